import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";

import type { SshRunnerConfig } from "./config";
import { renderEnvFile } from "./envfile";
import { deliverScript, parseReport, removeScript, reportHasKey, verifyScript, type RemoteTarget } from "./remote-scripts";

/** Arguments of {@link SshRunner}. */
export interface SshRunnerArgs {
    /** Host, credentials, file and unit; see {@link SshRunnerConfig} for defaults. */
    runner: SshRunnerConfig;
    /** Environment variable the unit gets. */
    envVar: string;
    /** The key: a secret Output, sent to the host on stdin only. */
    key: pulumi.Input<string>;
    /** Fingerprint of the key as read from 1Password. */
    keyFingerprint: pulumi.Input<string>;
}

/**
 * ringtail: a runner that is a systemd unit on a host reached over SSH, with
 * the host key pinned. The env file travels on stdin and is renamed into
 * place atomically (root, 0600); the unit is restarted only when the bytes
 * changed. A read-only check then reports what the host really holds,
 * including the fingerprint of the variable in the running process.
 */
export class SshRunner extends pulumi.ComponentResource {
    /** Whether the last delivery changed the file (and restarted the unit). */
    public readonly changed: pulumi.Output<boolean>;
    /** Fingerprint of the key in the env file on the host, or "none". */
    public readonly fileFingerprint: pulumi.Output<string>;
    /** `uid:gid` and octal mode of the env file, e.g. `0:0` and `600`. */
    public readonly fileOwner: pulumi.Output<string>;
    public readonly fileMode: pulumi.Output<string>;
    /** The unit's EnvironmentFiles include the env file. */
    public readonly unitReadsFile: pulumi.Output<boolean>;
    /** `systemctl is-active` of the unit. */
    public readonly unitActive: pulumi.Output<string>;
    /** Fingerprint of the variable in the unit's running main process, or "none". */
    public readonly processFingerprint: pulumi.Output<string>;
    /** File and process carry the key's fingerprint, root-only, and the unit is active and reads the file. */
    public readonly hasKey: pulumi.Output<boolean>;

    constructor(name: string, args: SshRunnerArgs, opts?: pulumi.ComponentResourceOptions) {
        super("ci-registry-auth:ssh:Runner", name, {}, opts);
        const r = args.runner;
        if (r.hostKey === undefined) {
            void pulumi.log.warn(
                `runner.insecureIgnoreHostKey is true: the SSH host key of ${r.host} is NOT checked, so an impostor could receive the key.`,
                this,
            );
        }

        const connection: command.types.input.remote.ConnectionArgs = {
            host: r.host,
            port: r.port,
            user: r.user,
            ...(r.hostKey !== undefined ? { hostKey: r.hostKey } : {}),
            ...(r.privateKey !== undefined ? { privateKey: r.privateKey } : {}),
            // Fail fast on an unreachable host instead of the provider's 10 dial attempts.
            dialErrorLimit: 3,
            perDialTimeout: 10,
        };
        const target: RemoteTarget = { envFile: r.envFile, unit: r.unit, envVar: args.envVar };
        const stdin = pulumi.secret(pulumi.output(args.key).apply((key) => renderEnvFile(args.envVar, key)));
        const script = deliverScript(target);

        const deliver = new command.remote.Command(
            `${name}-env-file`,
            {
                connection,
                create: script,
                // A new key changes only stdin, which runs `update`: the same
                // idempotent script. No trigger carries anything secret.
                update: script,
                delete: removeScript(target),
                stdin,
                logging: "none",
                addPreviousOutputInEnv: false,
            },
            {
                parent: this,
                additionalSecretOutputs: ["stderr"],
                // A different file, unit or variable is a different resource:
                // remove the old file first, then write the new one.
                replaceOnChanges: ["create"],
                deleteBeforeReplace: true,
            },
        );
        const delivered = deliver.stdout.apply(parseReport);
        this.changed = delivered.apply((d) => d["changed"] === "true");

        const verify = new command.remote.Command(
            `${name}-verify`,
            {
                connection,
                create: verifyScript(target),
                // Re-run whenever the delivery did something or the key changed.
                triggers: [args.keyFingerprint, deliver.stdout],
                logging: "none",
                addPreviousOutputInEnv: false,
            },
            { parent: this, dependsOn: [deliver], additionalSecretOutputs: ["stderr"] },
        );
        const report = verify.stdout.apply(parseReport);
        this.fileFingerprint = report.apply((v) => v["file_fp"] ?? "none");
        this.fileOwner = report.apply((v) => v["file_owner"] ?? "none");
        this.fileMode = report.apply((v) => v["file_mode"] ?? "none");
        this.unitReadsFile = report.apply((v) => v["unit_reads_file"] === "true");
        this.unitActive = report.apply((v) => v["unit_active"] ?? "unknown");
        this.processFingerprint = report.apply((v) => v["process_fp"] ?? "none");
        this.hasKey = pulumi.all([report, args.keyFingerprint]).apply(([v, fp]) => reportHasKey(v, fp));

        this.registerOutputs({
            changed: this.changed,
            fileFingerprint: this.fileFingerprint,
            processFingerprint: this.processFingerprint,
            unitActive: this.unitActive,
            unitReadsFile: this.unitReadsFile,
            hasKey: this.hasKey,
        });
    }
}
