/**
 * What this stack's earlier checkpoints may hold. Versions before this
 * program read 1Password itself handed the Connect token to the onepassword
 * provider, whose inputs are kept in the state; the backend keeps every
 * earlier checkpoint (`.pulumi/history/`, `.pulumi/backups/`, the `.bak`)
 * whatever later runs write. The stack's own last outputs tell which
 * version wrote it: this one exports `credentialFreeSince`.
 */
import * as pulumi from "@pulumi/pulumi";

/** The engine's built-in read of a stack's outputs (what a StackReference reads, without a resource in the state). */
const READ_STACK_OUTPUTS = "pulumi:pulumi:readStackOutputs";

/** What the stack's last outputs say about its history. */
export interface StateHistory {
    /**
     * ISO 8601: since when every checkpoint of this stack was written by a
     * version that keeps no credential in the state (the first `up` of this
     * version, or of the stack).
     */
    credentialFreeSince: string;
    /** Said once, on the first run after upgrading from a version that kept the Connect token in the state. */
    warning?: string;
}

/**
 * Judges the stack's last outputs (`undefined` or `{}` for a stack never
 * deployed) at `now`.
 */
export function judgeStateHistory(stack: string, last: Record<string, unknown> | undefined, now: Date): StateHistory {
    const since = last?.["credentialFreeSince"];
    if (typeof since === "string" && since !== "") return { credentialFreeSince: since };
    const deployedBefore = last !== undefined && Object.keys(last).length > 0;
    if (!deployedBefore) return { credentialFreeSince: now.toISOString() };
    return {
        credentialFreeSince: now.toISOString(),
        warning:
            `state: stack ${stack} was last deployed by an earlier version of this program, which kept the 1Password Connect ` +
            "token in the state (the onepassword provider's input); the backend keeps those checkpoints (.pulumi/history/, " +
            ".pulumi/backups/, the .bak) after this run. Before CI gets anything: rotate the Connect token (make a new one, " +
            `revoke the old), change this stack's passphrase (pulumi stack change-secrets-provider passphrase --stack ${stack}, ` +
            "commit the new encryptionsalt, give CI the new PULUMI_CONFIG_PASSPHRASE), and let CI's backend key read only the " +
            'current checkpoints (README, "CI and trust"). This is said once: from this run on, credentialFreeSince records it.',
    };
}

/**
 * Reads this stack's last outputs through the engine and judges them; the
 * warning goes to the run's diagnostics. A read that fails (a backend that
 * refuses it) is said, and nothing is claimed: undefined.
 */
export function stateHistory(): pulumi.Output<string | undefined> {
    const stack = pulumi.getStack();
    const name = `${pulumi.getOrganization()}/${pulumi.getProject()}/${stack}`;
    const last = pulumi.runtime
        .invoke(READ_STACK_OUTPUTS, { name })
        .then((r) => (r as { outputs?: Record<string, unknown> }).outputs ?? {})
        .catch((err: unknown): Record<string, unknown> | undefined => {
            void pulumi.log.warn(
                `state: this stack's last outputs could not be read (${err instanceof Error ? err.message : String(err)}), ` +
                    "so whether an earlier version kept the Connect token in its state is not known from here.",
            );
            return undefined;
        });
    return pulumi.output(
        last.then((outputs) => {
            if (outputs === undefined) return undefined;
            const judged = judgeStateHistory(stack, outputs, new Date());
            if (judged.warning !== undefined) void pulumi.log.warn(judged.warning);
            return judged.credentialFreeSince;
        }),
    );
}
