import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";

import type { SshRunnerConfig } from "../settings/config";
import { renderEnvFile } from "./envfile";
import {
    checkCommandFile,
    checkCommandPath,
    deliverAndCheckScript,
    deliverScript,
    installCheckScript,
    removeCheckScript,
    removeScript,
    verifyScript,
    type RemoteTarget,
} from "./host-scripts";
import { latestReport, parseReport, reportFacts, type ReportFacts } from "./host-report";

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
    /** Every job the runner takes sees the variable (its labels, `runner.envs`, `container.options`). */
    public readonly jobsSeeKey: pulumi.Output<boolean>;
    /** How jobs get the variable, or why they don't: settings, paths and labels, never values. */
    public readonly jobRoute: pulumi.Output<string>;
    /** File and process carry the key's fingerprint, root-only, the unit is active and reads the file, and jobs see it. */
    public readonly hasKey: pulumi.Output<boolean>;
    /** Whether key-health's key (runner.checkKey) is restricted to the installed check: `restricted`, or why not. */
    public readonly checkKey: pulumi.Output<string>;

    constructor(name: string, args: SshRunnerArgs, opts?: pulumi.ComponentResourceOptions) {
        super("ci-registry-auth:ssh:Runner", name, {}, opts);
        const r = args.runner;
        if (r.insecureIgnoreHostKey) {
            void pulumi.log.warn(
                `runner.insecureIgnoreHostKey is true: the SSH host key of ${r.host} is NOT checked, so an impostor could receive the key.`,
                this,
            );
        }
        const connection = sshConnection(r);
        const target: RemoteTarget = {
            envFile: r.envFile,
            unit: r.unit,
            envVar: args.envVar,
            user: r.user,
            ...(r.checkKey !== undefined ? { checkKey: r.checkKey } : {}),
        };

        const deliver = this.deliver(name, args, connection, target);
        const checkPath = this.installCheck(name, args, connection, target);
        const verify = this.verify(name, connection, target, deliver);

        const delivered = deliver.stdout.apply(parseReport);
        this.changed = pulumi.unsecret(delivered.apply((d) => d["changed"] === "true"));
        // Only these facts leave the reports (the later of the two): fingerprints,
        // file metadata, unit state and the jobs verdict, which names settings, never values.
        const facts = pulumi.unsecret(
            pulumi
                .all([delivered, verify.stdout, args.keyFingerprint])
                .apply(([d, stdout, fp]) => reportFacts(latestReport(d, parseReport(stdout)), fp, target)),
        );
        this.fileFingerprint = facts.fileFingerprint;
        this.fileOwner = facts.fileOwner;
        this.fileMode = facts.fileMode;
        this.unitReadsFile = facts.unitReadsFile;
        this.unitActive = facts.unitActive;
        this.processFingerprint = facts.processFingerprint;
        this.jobsSeeKey = facts.jobs.jobsSeeKey;
        this.jobRoute = facts.jobs.jobRoute;
        this.hasKey = facts.apply((f) => f.holdsKey && f.jobs.jobsSeeKey);
        this.checkKey = facts.checkKey;
        this.warnWithFixes(name, args, facts, checkPath);

        this.registerOutputs({
            changed: this.changed,
            fileFingerprint: this.fileFingerprint,
            processFingerprint: this.processFingerprint,
            unitActive: this.unitActive,
            unitReadsFile: this.unitReadsFile,
            jobsSeeKey: this.jobsSeeKey,
            jobRoute: this.jobRoute,
            checkKey: this.checkKey,
            hasKey: this.hasKey,
        });
    }

    /**
     * The delivery: the env file on stdin, renamed into place atomically, the
     * unit restarted only when the bytes changed. A new key changes only
     * stdin, which runs `update`: the same idempotent delivery, then the
     * check. No trigger carries anything secret.
     */
    private deliver(
        name: string,
        args: SshRunnerArgs,
        connection: command.types.input.remote.ConnectionArgs,
        target: RemoteTarget,
    ): command.remote.Command {
        const stdin = pulumi.secret(pulumi.output(args.key).apply((key) => renderEnvFile(args.envVar, key)));
        return new command.remote.Command(
            `${name}-env-file`,
            {
                connection,
                create: deliverScript(target),
                update: deliverAndCheckScript(target),
                delete: removeScript(target),
                stdin,
                logging: "none",
                addPreviousOutputInEnv: false,
            },
            {
                parent: this,
                // Its report ends with the check's, which carries the runner's
                // config and registration files: kept encrypted in state.
                additionalSecretOutputs: ["stdout", "stderr"],
                // A different file, unit or variable is a different resource:
                // remove the old file first, then write the new one. The delete
                // script names exactly those three (and is otherwise frozen:
                // removeScript); create runs only when the delivery is first
                // made, so a newer create script is ignored instead of
                // replacing the delivery (file removed, two restarts).
                replaceOnChanges: ["delete"],
                ignoreChanges: ["create"],
                deleteBeforeReplace: true,
            },
        );
    }

    /**
     * The check as a file on the host, the forced command of key-health's
     * restricted key (README, "Trust model"). Not secret; updated in place.
     * Returns its path.
     */
    private installCheck(
        name: string,
        args: SshRunnerArgs,
        connection: command.types.input.remote.ConnectionArgs,
        target: RemoteTarget,
    ): string {
        const checkPath = checkCommandPath(args.runner.envFile);
        new command.remote.Command(
            `${name}-check-command`,
            {
                connection,
                create: installCheckScript(checkPath),
                update: installCheckScript(checkPath),
                delete: removeCheckScript(checkPath),
                // After the key was read and judged: a run that stops on the key
                // (expired, missing, too short) touches nothing on the host.
                stdin: pulumi.output(args.keyFingerprint).apply(() => checkCommandFile(target)),
                logging: "none",
                addPreviousOutputInEnv: false,
            },
            { parent: this, replaceOnChanges: ["delete"], deleteBeforeReplace: true },
        );
        return checkPath;
    }

    /**
     * The read-only check on its own: runs after the delivery is created or
     * replaced (a new id; create runs the delivery alone), and on `pulumi up
     * --replace` (the re-check the warnings name). A rotation (update) runs
     * the same check in the delivery's own session.
     */
    private verify(
        name: string,
        connection: command.types.input.remote.ConnectionArgs,
        target: RemoteTarget,
        deliver: command.remote.Command,
    ): command.remote.Command {
        return new command.remote.Command(
            `${name}-verify`,
            {
                connection,
                create: verifyScript(target),
                triggers: [deliver.id],
                logging: "none",
                addPreviousOutputInEnv: false,
            },
            // The report carries the runner's config and registration files,
            // which may hold secrets of their own: kept encrypted in state.
            { parent: this, dependsOn: [deliver], additionalSecretOutputs: ["stdout", "stderr"] },
        );
    }

    /** One warning with its fix for each thing the check found that the operator must change on the host. */
    private warnWithFixes(name: string, args: SshRunnerArgs, facts: pulumi.Output<ReportFacts>, checkPath: string): void {
        const r = args.runner;
        facts.checkKey.apply((verdict) => {
            if (r.checkKey !== undefined && verdict !== "restricted") {
                void pulumi.log.warn(
                    `${name}: key-health's key (runner.checkKey) on ${r.host} is ${verdict}. Fix: in the host's authorized keys for ${r.user}, ` +
                        `prefix that key with restrict,command="${checkPath}" (NixOS: users.users.${r.user}.openssh.authorizedKeys.keys; README, "Trust model"), ` +
                        `then re-check with pulumi up --replace <urn of ${name}-verify>.`,
                    this,
                );
            }
        });
        facts.jobs.apply((jobs) => {
            if (jobs.fix !== undefined) {
                void pulumi.log.warn(
                    `${name}: jobs on ${r.host} do not see ${args.envVar}: ${jobs.jobRoute}. Fix: ${jobs.fix}; ` +
                        `then re-check with pulumi up --replace <urn of ${name}-verify> (pulumi stack --show-urns).`,
                    this,
                );
            }
        });
    }
}

/**
 * How the command provider reaches the host. No private key: it signs with
 * the ssh-agent at $SSH_AUTH_SOCK of the machine that runs `pulumi up`, so
 * the key is in neither the stack's config nor its state (README, "Trust
 * model").
 */
function sshConnection(r: SshRunnerConfig): command.types.input.remote.ConnectionArgs {
    return {
        host: r.host,
        port: r.port,
        user: r.user,
        ...(r.hostKey !== undefined ? { hostKey: r.hostKey } : {}),
        // Fail fast on an unreachable host instead of the provider's 10 dial attempts.
        dialErrorLimit: 3,
        perDialTimeout: 10,
    };
}
