import type * as pulumi from "@pulumi/pulumi";

import type { KubernetesDelivered, SshDelivered } from "../../components/outputs";
import type { StackOutputs } from "../../components/stack";

/**
 * Resolves an Output to its value, so a test can `await` it and assert
 * outside any `apply` (an expect inside an un-awaited apply proves nothing).
 * Rejects when anything in the Output's chain threw.
 */
export function valueOf<T>(output: pulumi.Output<T>): Promise<T> {
    // `promise` is not in the public typings, but every Output has it.
    const internal = output as unknown as { promise: (withUnknowns?: boolean) => Promise<T> };
    return internal.promise();
}

/** Resolves every Output in a record. */
export async function valuesOf(record: Record<string, pulumi.Output<unknown>>): Promise<Record<string, unknown>> {
    const entries = await Promise.all(Object.entries(record).map(async ([k, v]) => [k, await valueOf(v)] as const));
    return Object.fromEntries(entries);
}

/** ringtail's delivered facts, resolved; fails for a stack of another kind. */
export function sshDelivered(outputs: StackOutputs): Promise<SshDelivered> {
    if (outputs.runnerKind !== "ssh") throw new Error(`not an ssh stack: ${outputs.runnerKind}`);
    return valueOf(outputs.delivered);
}

/** indri's delivered facts, resolved; fails for a stack of another kind. */
export function kubernetesDelivered(outputs: StackOutputs): Promise<KubernetesDelivered> {
    if (outputs.runnerKind !== "kubernetes") throw new Error(`not a kubernetes stack: ${outputs.runnerKind}`);
    return valueOf(outputs.delivered);
}

/** indri's CI kubeconfig Output; fails for a stack of another kind. */
export function ciKubeconfigOf(outputs: StackOutputs): pulumi.Output<string | undefined> {
    if (outputs.runnerKind !== "kubernetes") throw new Error(`not a kubernetes stack: ${outputs.runnerKind}`);
    return outputs.ciKubeconfig;
}
