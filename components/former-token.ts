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

/** What a run found of a former version's token holder in the stack's last checkpoint (the `formerTokenHolder` output). */
export interface FormerTokenHolder {
    /**
     * `absent`, `present` (warned), `unknown` (the read failed: warned) or
     * `not-read` (the last checkpoint has no outputs: a stack never deployed).
     */
    holder: "absent" | "present" | "unknown" | "not-read";
    /** Where that was read. */
    readFrom: string;
    /**
     * When the last checkpoint's resources were read for this answer (ISO
     * 8601): by this run, or by the run whose answer it carries. Absent when
     * they were not read (`not-read`, `unknown`).
     */
    resourcesReadAt?: string;
}

const FROM_RESOURCES = "the last checkpoint's resources";
const FROM_OUTPUT =
    "the last checkpoint's formerTokenHolder output: the run that wrote it found none in the checkpoint before, and no version that writes it makes one";

/**
 * Reads this stack's last checkpoint through the engine and warns when a
 * former version's token holder is among its resources. Only the types
 * are kept from the answers.
 *
 * Reading every resource's outputs costs each run about 0.2 s of the
 * program's CPU (indri's Deployment, twice, in protobuf) on the path that
 * registers its resources (docs/performance.md). Once one run has read
 * the resources and found no holder, its checkpoint says so in this
 * output, and a later run takes that instead: that run's checkpoint holds
 * the resources of the one it read, less what it deleted, plus what it
 * made, and no version that writes this output makes a holder. So
 * `absent` carries forward even when an up fails before its outputs are
 * written (the checkpoint keeps the last outputs and gains no holder).
 * The carried answer keeps the time those resources were read. Anything
 * else (`present`, `unknown`, `not-read`, `absent` without that time, no
 * output: a former version's checkpoint) has the next run read the
 * resources again.
 *
 * A stack that never exported outputs is not asked for its resources (the
 * engine's resource read fails on a stack that was never deployed). A read
 * that fails is said: then nothing is known about the history here.
 */
export async function checkFormerToken(): Promise<FormerTokenHolder> {
    const stack = pulumi.getStack();
    const name = `${pulumi.getOrganization()}/${pulumi.getProject()}/${stack}`;
    let types: string[];
    let resourcesReadAt: string;
    try {
        const outputs = (await pulumi.runtime.invoke(READ_STACK_OUTPUTS, { name })) as { outputs?: Record<string, unknown> };
        const last = outputs.outputs ?? {};
        if (Object.keys(last).length === 0) {
            return { holder: "not-read", readFrom: "nothing: the last checkpoint has no outputs (a stack never deployed)" };
        }
        const carried = last["formerTokenHolder"] as Partial<FormerTokenHolder> | undefined;
        if (carried?.holder === "absent" && typeof carried.resourcesReadAt === "string") {
            return { holder: "absent", readFrom: FROM_OUTPUT, resourcesReadAt: carried.resourcesReadAt };
        }
        const read = (await pulumi.runtime.invoke(READ_STACK_RESOURCES, { stackName: name })) as {
            outputs?: Record<string, { type?: string }>;
        };
        types = Object.values(read.outputs ?? {}).map((r) => r.type ?? "");
        resourcesReadAt = new Date().toISOString();
    } catch (err) {
        void pulumi.log.warn(
            `state: the resources of stack ${stack}'s last checkpoint could not be read (${describe(err)}), ` +
                "so whether an earlier version kept the Connect token in its state is not known from here.",
        );
        return { holder: "unknown", readFrom: `${FROM_RESOURCES}: the read failed (the run's warning says why)` };
    }
    const warning = formerTokenWarning(stack, types);
    if (warning === undefined) return { holder: "absent", readFrom: FROM_RESOURCES, resourcesReadAt };
    void pulumi.log.warn(warning);
    return { holder: "present", readFrom: FROM_RESOURCES, resourcesReadAt };
}

/** An invoke's error as text: the SDK rejects with an Error of the engine's details. */
function describe(err: unknown): string {
    const text = err instanceof Error ? err.message : String(err);
    return text !== "" ? text : "no reason given";
}
