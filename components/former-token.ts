/**
 * Whether this stack's last checkpoint was written by a version that kept
 * the 1Password Connect token in the state: those versions read 1Password
 * through the onepassword provider, whose inputs (the token among them) the
 * state keeps. The first `up` of this version deletes that provider, but the
 * backend keeps every earlier checkpoint (`.pulumi/history/`,
 * `.pulumi/backups/`, the `.bak`): the operator is told, once, what to
 * rotate before CI gets anything.
 */
import * as pulumi from "@pulumi/pulumi";

/** The engine's built-in reads of a stack's last checkpoint: its outputs, and every resource's (URN -> { type, outputs }). */
const READ_STACK_OUTPUTS = "pulumi:pulumi:readStackOutputs";
const READ_STACK_RESOURCES = "pulumi:pulumi:readStackResourceOutputs";

/** The provider type of the versions that kept the token. */
export const FORMER_TOKEN_HOLDER = "pulumi:providers:onepassword";

/**
 * The warning for a stack whose last checkpoint holds resources of
 * `types`, or undefined when none of them kept the token.
 */
export function formerTokenWarning(stack: string, types: string[]): string | undefined {
    if (!types.includes(FORMER_TOKEN_HOLDER)) return undefined;
    return (
        `state: stack ${stack} was last deployed by a version of this program that kept the 1Password Connect token in its ` +
        "state (the onepassword provider's input). This run removes the provider, but the backend keeps those checkpoints " +
        "(.pulumi/history/, .pulumi/backups/, the .bak). Before CI gets anything: rotate the Connect token (make a new one, " +
        `revoke the old), change this stack's passphrase (pulumi stack change-secrets-provider passphrase --stack ${stack}, ` +
        "commit the new encryptionsalt, give CI the new PULUMI_CONFIG_PASSPHRASE), and let CI's backend key read only the " +
        'current checkpoints (README, "CI and trust"). Said while the last checkpoint still holds the provider.'
    );
}

/**
 * Reads the resource types of this stack's last checkpoint through the
 * engine and warns when a former version's token holder is among them. A
 * stack that never exported outputs is not asked for its resources (the
 * engine's resource read fails on a stack that was never deployed). A read
 * that fails is said: then nothing is known about the history here. Only
 * the types are kept from the answers.
 */
export async function warnOfFormerToken(): Promise<void> {
    const stack = pulumi.getStack();
    const name = `${pulumi.getOrganization()}/${pulumi.getProject()}/${stack}`;
    let types: string[];
    try {
        const outputs = (await pulumi.runtime.invoke(READ_STACK_OUTPUTS, { name })) as { outputs?: Record<string, unknown> };
        if (Object.keys(outputs.outputs ?? {}).length === 0) return;
        const read = (await pulumi.runtime.invoke(READ_STACK_RESOURCES, { stackName: name })) as {
            outputs?: Record<string, { type?: string }>;
        };
        types = Object.values(read.outputs ?? {}).map((r) => r.type ?? "");
    } catch (err) {
        void pulumi.log.warn(
            `state: the resources of stack ${stack}'s last checkpoint could not be read (${describe(err)}), ` +
                "so whether an earlier version kept the Connect token in its state is not known from here.",
        );
        return;
    }
    const warning = formerTokenWarning(stack, types);
    if (warning !== undefined) void pulumi.log.warn(warning);
}

/** An invoke's error as text: the SDK rejects with an Error of the engine's details. */
function describe(err: unknown): string {
    const text = err instanceof Error ? err.message : String(err);
    return text !== "" ? text : "no reason given";
}
