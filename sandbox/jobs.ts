/**
 * Real workflow jobs on the sandbox's two runners (and the PR preview's
 * pulumi runner). One place picks the engine (`jobEngine`):
 *
 * - **forgejo-runner**, the real daemon (v12), whenever its binary is here
 *   (sandbox/forgejo-runner.ts): registered with the sandbox's Gitea with the
 *   runner's own labels, configured from the runner's own config, it takes
 *   each job from a real Gitea event (a push of a commit that carries the
 *   fixture as `.forgejo/workflows/<fixture>`, `vars.*` as the repository's
 *   Actions variables). ringtail: the NixOS-shaped unit runs the daemon
 *   (`RingtailJobs`); indri: a daemon here, started as the runner container
 *   would be from the live pod template (`IndriJobs`).
 * - **act** (nektos/act v0.2.89, the engine forgejo-runner forked), only when
 *   the binary is absent: CI cannot count on it, because forgejo-runner is not
 *   served by the Go module proxy and is built outside this project. act runs
 *   the fixture as forgejo-runner would with the runner's own config:
 *   `runner.envs` become act's `--env`, `container.options` its
 *   `--container-options`, `container.network` its `--network`, and each
 *   label maps to act's platform (`-P name=-self-hosted` for host labels,
 *   `-P name=<image>` for docker ones). ringtail: act's host executor in a
 *   transient systemd unit with the runner unit's `EnvironmentFile=` and
 *   `DynamicUser=`; indri: act's docker executor on this machine with the
 *   runner container's environment resolved from the live pod template.
 *
 * Where the two differ, docs/sandbox.md says so.
 */
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";

import { parse, parseDocument } from "yaml";

import { parseLabel } from "../components/runner-config";
import { shellQuote } from "../components/shell";
import type { Cluster } from "./cluster";
import type { Dockerd } from "./dockerd";
import { ForgejoRunner, forgejoRunnerAbsence, forgejoRunnerPath } from "./forgejo-runner";
import { Gitea, WORKFLOW_DIR, type GiteaRepo } from "./gitea";
import { resolveContainerEnv, type ContainerEnvSpec } from "./pod-env";
import { writeOciImage } from "./oci-image";
import { IMAGE_DIR, Ringtail } from "./ringtail";

/** The workflow fixtures (test/fixtures/workflows). */
export const WORKFLOWS = join(__dirname, "..", "test", "fixtures", "workflows");

/** The two engines that run the sandbox's jobs. */
export type JobEngine = "forgejo-runner" | "act";

/**
 * Which engine runs the sandbox's jobs, and why: the real forgejo-runner
 * daemon when its binary is present (CI_REGISTRY_AUTH_FORGEJO_RUNNER, else the
 * cache's forgejo-runner/forgejo-runner), act otherwise. The one place that
 * picks; tests name the engine in a printed line (`engineLine`).
 */
export function jobEngine(): { engine: JobEngine; why: string } {
    const absent = forgejoRunnerAbsence();
    return absent === undefined
        ? { engine: "forgejo-runner", why: `the real daemon ${forgejoRunnerPath()}, jobs from Gitea events` }
        : { engine: "act", why: absent };
}

/** One line saying which engine runs `what`'s jobs, and why. */
export function engineLine(what: string): string {
    const { engine, why } = jobEngine();
    return engine === "forgejo-runner"
        ? `${what}: jobs run on forgejo-runner (${why})`
        : `${what}: jobs run on act, not the daemon: ${why}`;
}

/**
 * For a test that only makes sense on the daemon (registration, label
 * matching, Gitea's own handling of a fork's secrets): whether to skip it and
 * its name, which then says "not run: …" and how to fix that.
 */
export function daemonOnly(name: string): { skip: boolean; name: string } {
    const absent = forgejoRunnerAbsence();
    return absent === undefined ? { skip: false, name } : { skip: true, name: `${name} (not run: ${absent})` };
}

/** What a job printed (act's output, or the job's log as Gitea keeps it) and how it ended. */
export interface JobRun {
    code: number;
    log: string;
    /** act: from start to end of the job; forgejo-runner: from the event (push, API call) to the run seen completed; seconds. */
    seconds: number;
    engine: JobEngine;
    /** forgejo-runner: the run's URL path in Gitea, e.g. `ops/repo/actions/runs/3`. */
    run?: string;
}

/** The values a fixture reads with `${{ vars.X }}`. */
export type JobVars = Record<string, string>;

/** act's flags for a runner config and its labels; `image` maps a docker label's image to a local one. */
export function actFlags(configText: string, registrationLabels: string[], image: (name: string) => string): string[] {
    const config = (parse(configText) ?? {}) as {
        runner?: { envs?: Record<string, unknown>; labels?: string[] };
        container?: { options?: string; network?: string };
    };
    const flags: string[] = [];
    for (const [name, value] of Object.entries(config.runner?.envs ?? {})) {
        flags.push("--env", `${name}=${String(value)}`);
    }
    if (config.container?.options !== undefined) flags.push("--container-options", config.container.options);
    // forgejo-runner makes a network per job when unset; act's default is host.
    flags.push("--network", config.container?.network ?? "host");
    const labels = config.runner?.labels !== undefined && config.runner.labels.length > 0 ? config.runner.labels : registrationLabels;
    for (const label of labels) {
        const { name, scheme, arg } = parseLabel(label);
        if (scheme === "host") {
            flags.push("-P", `${name}=-self-hosted`);
        } else if (scheme === "docker") {
            flags.push("-P", `${name}=${image(arg.replace(/^\/\//, "") || "node:22-bookworm")}`);
        } else {
            throw new Error(`the sandbox runs host and docker labels only, not ${label}`);
        }
    }
    return flags;
}

const varFlags = (vars: JobVars): string[] => Object.entries(vars).flatMap(([k, v]) => ["--var", `${k}=${v}`]);

/** Runs `workflow` (a fixture's path) on ringtail, as its runner unit runs host jobs. */
export function runRingtailJob(host: Ringtail, workflow: string, vars: JobVars): JobRun {
    const t0 = Date.now();
    const read = (path: string): string => {
        const r = host.ssh(`cat ${shellQuote(path)}`);
        if (r.code !== 0) throw new Error(`reading ${path} on ringtail failed: ${r.stderr}`);
        return r.stdout;
    };
    const config = read(host.facts.runnerConfig);
    const registration = JSON.parse(read(host.facts.runnerRegistration)) as { labels: string[] };
    const remote = `/srv/ci-probe/workflows/${basename(workflow)}`;
    const upload = host.ssh(
        `mkdir -p /srv/ci-probe/workflows && cat > ${shellQuote(remote)} && chmod -R a+rX /srv/ci-probe`,
        readFileSync(workflow, "utf8"),
    );
    if (upload.code !== 0) throw new Error(`uploading ${workflow} failed: ${upload.stderr}`);
    const flags = actFlags(config, registration.labels, () => {
        throw new Error("ringtail has no docker: its runner takes host labels only");
    });
    const act = ["/usr/local/bin/act", "push", "-W", remote, "--no-cache-server", ...flags, ...varFlags(vars)];
    const r = host.ssh(
        [
            "systemd-run --quiet --wait --pipe --collect",
            `-p EnvironmentFile=-${host.facts.envFile} -p DynamicUser=yes -p PrivateTmp=yes -p WorkingDirectory=/tmp -E HOME=/tmp`,
            act.map(shellQuote).join(" "),
        ].join(" "),
    );
    return { code: r.code, log: r.stdout + r.stderr, seconds: (Date.now() - t0) / 1000, engine: "act" };
}

/** The local job image; each docker label's image name is made a tag of it. */
export const JOB_IMAGE = "ci-registry-auth-sandbox/job:latest";

/**
 * Builds JOB_IMAGE without pulling anything: ringtail's root filesystem
 * (Debian with skopeo, the sandbox registries and the process-list
 * sampler), with the probe image to push at IMAGE_DIR, and the `dagger` CLI
 * at /usr/local/bin/dagger when `daggerCli` names it (sandbox/dagger.ts).
 */
export function importJobImage(dockerd: Dockerd, daggerCli?: string): void {
    const r = spawnSync("bash", [join(__dirname, "ringtail", "host"), "rootfs"], { encoding: "utf8", timeout: 600_000 });
    if (r.status !== 0) throw new Error(`sandbox/ringtail/host rootfs failed: ${r.stderr}`);
    const rootfs = r.stdout.trim();
    const overlay = mkdtempSync(join(tmpdir(), "cra-job-image-"));
    try {
        writeOciImage(join(overlay, IMAGE_DIR), "pushed by a docker job of the ci-registry-auth sandbox\n");
        const paths = [IMAGE_DIR.replace(/^\//, "")];
        if (daggerCli !== undefined) {
            mkdirSync(join(overlay, "usr", "local", "bin"), { recursive: true });
            copyFileSync(daggerCli, join(overlay, "usr", "local", "bin", "dagger"));
            paths.push("usr/local/bin/dagger");
        }
        dockerd.importImage(JOB_IMAGE, rootfs, { dir: overlay, paths });
    } finally {
        rmSync(overlay, { recursive: true, force: true });
    }
}

/** indri's runner container as the kubelet would start it: its environment, its config.yaml and its labels. */
export interface LiveRunner {
    env: Record<string, string>;
    config: string;
    /** RUNNER_LABELS, with which blumeops's start script registers the runner. */
    labels: string[];
}

/** Reads the live Deployment forgejo-runner/forgejo-runner: the runner container's environment (from the live Secrets and ConfigMaps) and config.yaml. */
export function liveRunner(cluster: Cluster): LiveRunner {
    const ns = "forgejo-runner";
    interface Live {
        spec: {
            template: {
                spec: {
                    containers: (ContainerEnvSpec & { name: string; volumeMounts?: { name: string; mountPath: string }[] })[];
                    volumes: { name: string; configMap?: { name: string } }[];
                };
            };
        };
    }
    const d = cluster.get<Live>("deployment", "forgejo-runner", ns);
    const runner = d?.spec.template.spec.containers.find((c) => c.name === "runner");
    if (d === undefined || runner === undefined) throw new Error("no runner container in deployment forgejo-runner/forgejo-runner");
    const env = resolveContainerEnv(runner, {
        secret: (name) => {
            const s = cluster.get<{ data?: Record<string, string> }>("secret", name, ns);
            return s && Object.fromEntries(Object.entries(s.data ?? {}).map(([k, v]) => [k, Buffer.from(v, "base64").toString("utf8")]));
        },
        configMap: (name) => cluster.get<{ data?: Record<string, string> }>("configmap", name, ns)?.data,
        field: (path) => (path === "metadata.namespace" ? ns : undefined),
    });
    // blumeops mounts volume "config" at /config and starts the daemon with --config /config/config.yaml.
    const mount = runner.volumeMounts?.find((m) => m.mountPath === "/config");
    const configMap = d.spec.template.spec.volumes.find((v) => v.name === mount?.name)?.configMap?.name;
    const config =
        configMap !== undefined
            ? cluster.get<{ data?: Record<string, string> }>("configmap", configMap, ns)?.data?.["config.yaml"]
            : undefined;
    if (config === undefined) throw new Error("the runner container has no config.yaml mounted at /config");
    const labels = (env["RUNNER_LABELS"] ?? "").split(",").filter((l) => l !== "");
    return { env, config, labels };
}

/** Tags JOB_IMAGE as the image of each docker label (never pulled: the runner finds it locally). */
function tagLabelImages(dockerd: Dockerd, labels: string[]): void {
    for (const label of labels) {
        const { scheme, arg } = parseLabel(label);
        if (scheme !== "docker") continue;
        const image = arg.replace(/^\/\//, "") || "node:22-bookworm";
        const tag = dockerd.docker(["tag", JOB_IMAGE, image]);
        if (tag.code !== 0) throw new Error(`docker tag ${image} failed: ${tag.stderr}`);
    }
}

/**
 * Runs `workflow` on indri as its runner container would: act with the
 * container's environment from the live pod template and the runner's
 * config.yaml from the ConfigMap the Deployment mounts. `override` replaces
 * variables of that environment (e.g. a key a stale pod would still hold).
 */
export function runIndriJob(
    cluster: Cluster,
    dockerd: Dockerd,
    workflow: string,
    vars: JobVars,
    override: Record<string, string> = {},
): JobRun {
    const t0 = Date.now();
    const { env, config, labels } = liveRunner(cluster);
    tagLabelImages(dockerd, labels);
    const flags = actFlags(config, labels, (image) => image);
    const home = mkdtempSync(join(tmpdir(), "cra-act-"));
    try {
        const act = join(process.env["CI_REGISTRY_AUTH_SANDBOX"] ?? "", "bin", "act");
        const r = spawnSync(act, ["push", "-W", workflow, "--no-cache-server", "--pull=false", ...flags, ...varFlags(vars)], {
            cwd: home,
            env: { ...env, ...override, PATH: process.env["PATH"] ?? "/usr/bin:/bin", HOME: home, DOCKER_HOST: dockerd.host },
            encoding: "utf8",
            timeout: 300_000,
        });
        return { code: r.status ?? -1, log: r.stdout + r.stderr, seconds: (Date.now() - t0) / 1000, engine: "act" };
    } finally {
        rmSync(home, { recursive: true, force: true });
    }
}

/**
 * A repository in the sandbox's Gitea whose pushes are the jobs' events: each
 * job is a commit holding exactly one fixture as `.forgejo/workflows/<name>`,
 * pushed to a branch of its own, with `vars` set as the repository's Actions
 * variables first. The run Gitea makes of that push is awaited through the
 * API; its jobs' logs are the job's log.
 */
export class JobRepository {
    private count = 0;

    private constructor(
        readonly gitea: Gitea,
        readonly repo: GiteaRepo,
        private readonly dir: string,
    ) {}

    /** Creates `name` (empty) in `gitea` and a local work tree for it. */
    static async create(gitea: Gitea, name: string): Promise<JobRepository> {
        const repo = await gitea.createRepoOf(gitea.user, name);
        const dir = mkdtempSync(join(tmpdir(), "cra-job-repo-"));
        const r = spawnSync("git", ["init", "-q", "-b", "main"], { cwd: dir, encoding: "utf8" });
        if (r.status !== 0) throw new Error(`git init failed: ${r.stderr}`);
        return new JobRepository(gitea, repo, dir);
    }

    private git(args: string[]): string {
        const r = spawnSync("git", ["-c", "user.name=ops", "-c", "user.email=ops@example.invalid", ...args], {
            cwd: this.dir,
            encoding: "utf8",
        });
        if (r.status !== 0) throw new Error(`git ${args.join(" ")} failed: ${r.stderr}`);
        return r.stdout.trim();
    }

    /** Pushes `workflow` (a fixture's path) and waits for the job Gitea gives the runner; `describe` adds to a timeout's error. */
    async run(workflow: string, vars: JobVars, describe?: () => string): Promise<JobRun> {
        for (const [name, value] of Object.entries(vars)) await this.gitea.setVariable(this.repo, name, value);
        const n = ++this.count;
        rmSync(join(this.dir, ".forgejo"), { recursive: true, force: true });
        mkdirSync(join(this.dir, WORKFLOW_DIR), { recursive: true });
        copyFileSync(workflow, join(this.dir, WORKFLOW_DIR, basename(workflow)));
        this.git(["add", "-A"]);
        this.git(["commit", "-q", "--allow-empty", "-m", `job ${n}: ${basename(workflow)}`]);
        const sha = this.git(["rev-parse", "HEAD"]);
        const t0 = Date.now();
        this.gitea.push(this.repo, this.dir, sha, `job-${n}`);
        const { run, seen } = await this.gitea.completedRun(this.repo, (r) => r.event === "push" && r.head_sha === sha, {
            ...(describe !== undefined ? { describe } : {}),
        });
        const jobs = await this.gitea.runJobsWithLogs(this.repo, run.id);
        return {
            code: run.conclusion === "success" ? 0 : 1,
            log: jobs.map((j) => j.log).join("\n"),
            seconds: (seen - t0) / 1000,
            engine: "forgejo-runner",
            run: `${this.repo.fullName}/actions/runs/${run.id}`,
        };
    }

    /** Removes the local work tree. */
    remove(): void {
        rmSync(this.dir, { recursive: true, force: true });
    }
}

/** ringtail's runner registration as NixOS's module made it (name and labels; sandbox/ringtail/rootfs/runner-registration.json). */
export function ringtailRegistration(): { name: string; labels: string[] } {
    const r = JSON.parse(readFileSync(join(__dirname, "ringtail", "rootfs", "runner-registration.json"), "utf8")) as {
        name: string;
        labels: string[];
    };
    return { name: r.name, labels: r.labels };
}

/**
 * The sandbox ringtail and its runner's jobs. With forgejo-runner: Gitea
 * listens on the host side of the machine's link (the address the machine
 * reaches this one by), the runner is registered with it with ringtail's
 * name and labels, and the unit runs the real daemon with that registration
 * (Ringtail.startWithDaemon); a job is a push to `repo`, and the delivery's
 * restart restarts the process that takes the jobs. With act: the unit keeps
 * its stand-in and each job is act in a transient unit (runRingtailJob).
 */
export class RingtailJobs {
    private constructor(
        readonly host: Ringtail,
        readonly engine: JobEngine,
        readonly gitea?: Gitea,
        readonly repo?: JobRepository,
    ) {}

    /** Boots ringtail; with the daemon, first starts Gitea (Actions on) on `giteaPort` of the link's host side and registers the runner. */
    static async start(giteaPort: number): Promise<RingtailJobs> {
        const { engine } = jobEngine();
        if (engine === "act") return new RingtailJobs(Ringtail.start(), "act");
        const started: { gitea?: Gitea; host?: Ringtail } = {};
        try {
            started.host = await Ringtail.startWithDaemon(async (hostAddress: string) => {
                const gitea = await Gitea.start(giteaPort, { actions: true, address: hostAddress });
                started.gitea = gitea;
                return { binary: forgejoRunnerPath(), registration: ForgejoRunner.registrationFor(gitea, ringtailRegistration()) };
            });
            const gitea = started.gitea as Gitea;
            const jobs = new RingtailJobs(started.host, engine, gitea, await JobRepository.create(gitea, "ringtail-jobs"));
            await jobs.declared();
            return jobs;
        } catch (err) {
            started.host?.stop();
            await started.gitea?.stop();
            started.gitea?.remove();
            throw err;
        }
    }

    /** The unit's journal (the daemon's own log with forgejo-runner), for assertions and leak scans. */
    runnerLog(): string {
        return this.host.ssh(`journalctl -u ${this.host.facts.unit} -o cat --no-pager`).stdout;
    }

    /** The unit's main process. */
    mainPid(): number {
        return Number(this.host.ssh(`systemctl show -p MainPID --value ${this.host.facts.unit}`).stdout.trim());
    }

    /** Waits (bounded) until the unit's current daemon has declared itself to Gitea. */
    async declared(timeoutMs = 60_000): Promise<void> {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
            const pid = this.mainPid();
            const lines = this.host.ssh(
                `journalctl -u ${this.host.facts.unit} _PID=${pid} -o cat --no-pager | grep -c 'declared successfully' || true`,
            );
            if (pid > 0 && Number(lines.stdout.trim()) > 0) return;
            if (Date.now() > deadline)
                throw new Error(
                    `ringtail's runner daemon did not declare itself within ${timeoutMs / 1000} s:\n${this.runnerLog().slice(-3000)}`,
                );
            await new Promise((resolve) => setTimeout(resolve, 250));
        }
    }

    /** The process that took the last job: the PID of the daemon's latest "task … repo is …" line, or undefined (act). */
    lastTaskTakenBy(): number | undefined {
        if (this.engine === "act") return undefined;
        const r = this.host.ssh(
            `journalctl -u ${this.host.facts.unit} -o json --output-fields=MESSAGE,_PID --no-pager | grep 'repo is' | tail -n 1`,
        );
        const line = r.stdout.trim();
        return line === "" ? undefined : Number((JSON.parse(line) as { _PID: string })._PID);
    }

    /** Runs `workflow` (a fixture's path) on ringtail's runner. */
    async job(workflow: string, vars: JobVars): Promise<JobRun> {
        if (this.repo === undefined) return runRingtailJob(this.host, workflow, vars);
        return this.repo.run(workflow, vars, () => `; runner log:\n${this.runnerLog().slice(-3000)}`);
    }

    /** Powers ringtail off and stops Gitea. */
    async stop(): Promise<void> {
        try {
            await this.gitea?.stop();
        } finally {
            this.host.stop();
            this.repo?.remove();
            this.gitea?.remove();
        }
    }
}

/**
 * indri's runner and its jobs. With forgejo-runner: a daemon on this machine
 * stands for the runner container, started as the kubelet would start it from
 * the live pod template (environment resolved from the live Secrets, config.yaml
 * from the mounted ConfigMap, registered with RUNNER_LABELS as blumeops's start
 * script does), using the docker executor against the sandbox dockerd; when
 * the template or the config changes, the next job gets a new "pod": a new
 * runner directory (the pod's emptyDir /data), registered anew and started
 * with the new environment. With act: runIndriJob.
 */
export class IndriJobs {
    private current: { runner: ForgejoRunner; pod: string } | undefined;
    /** Every daemon's log, for leak scans. */
    private readonly logs: string[] = [];

    private constructor(
        readonly cluster: Cluster,
        readonly dockerd: Dockerd,
        readonly engine: JobEngine,
        readonly gitea?: Gitea,
        readonly repo?: JobRepository,
        readonly daggerHost?: string,
    ) {}

    /**
     * With the daemon, starts Gitea (Actions on) on 127.0.0.1:`giteaPort`; the
     * runner starts with the first job. `daggerHost`: the address of the
     * sandbox's Dagger engine (sandbox/dagger.ts), which jobs then reach.
     */
    static async start(cluster: Cluster, dockerd: Dockerd, giteaPort: number, daggerHost?: string): Promise<IndriJobs> {
        const { engine } = jobEngine();
        if (engine === "act") return new IndriJobs(cluster, dockerd, "act");
        const gitea = await Gitea.start(giteaPort, { actions: true });
        return new IndriJobs(cluster, dockerd, engine, gitea, await JobRepository.create(gitea, "indri-jobs"), daggerHost);
    }

    /**
     * The daemon's config: the live config.yaml with only what this machine
     * needs changed. `runner.file`: the pod keeps `.runner` in its emptyDir
     * (/data/.runner); here, the runner's own directory. `container.docker_host`:
     * the pod reaches the dind sidecar at tcp://127.0.0.1:2375, which
     * forgejo-runner treats as `-` (a non-unix socket is never mounted into
     * job containers); here `-` with DOCKER_HOST in the daemon's environment
     * naming the sandbox dockerd's socket, so that it is not mounted either.
     * With `daggerHost`, `runner.envs` gains `_EXPERIMENTAL_DAGGER_RUNNER_HOST`:
     * a job's `dagger` on indri starts its engine in the dind sidecar, here
     * it reaches the engine that runs beside dockerd (sandbox/dagger.ts).
     */
    static daemonConfig(config: string, daggerHost?: string): string {
        const doc = parseDocument(config);
        doc.setIn(["runner", "file"], ".runner");
        doc.setIn(["container", "docker_host"], "-");
        if (daggerHost !== undefined) doc.setIn(["runner", "envs", "_EXPERIMENTAL_DAGGER_RUNNER_HOST"], daggerHost);
        return doc.toString();
    }

    /** Starts (or keeps) the daemon that matches the live pod template, with `override` replacing variables of its environment. */
    private async pod(override: Record<string, string>): Promise<ForgejoRunner> {
        const live = liveRunner(this.cluster);
        const env: Record<string, string> = { ...live.env, ...override, DOCKER_HOST: this.dockerd.host };
        const pod = JSON.stringify([env, live.config, live.labels]);
        if (this.current?.pod === pod) return this.current.runner;
        if (this.current !== undefined) {
            await this.current.runner.stop();
            this.logs.push(this.current.runner.log);
            this.current.runner.remove();
            this.current = undefined;
        }
        tagLabelImages(this.dockerd, live.labels);
        const runner = new ForgejoRunner();
        try {
            runner.register(this.gitea as Gitea, { name: env["RUNNER_NAME"] ?? "k8s-runner", labels: live.labels });
            await runner.start({ config: IndriJobs.daemonConfig(live.config, this.daggerHost), env });
        } catch (err) {
            runner.remove();
            throw err;
        }
        this.current = { runner, pod };
        return runner;
    }

    /** Runs `workflow` on indri's runner; `override` replaces variables of the runner container's environment (a pod that kept an old key). */
    async job(workflow: string, vars: JobVars, override: Record<string, string> = {}): Promise<JobRun> {
        if (this.repo === undefined) return runIndriJob(this.cluster, this.dockerd, workflow, vars, override);
        const runner = await this.pod(override);
        return this.repo.run(workflow, vars, () => `; runner log:\n${runner.log.slice(-3000)}`);
    }

    /** Every daemon's log so far (forgejo-runner), for leak scans. */
    runnerLog(): string {
        return [...this.logs, this.current?.runner.log ?? ""].join("\n");
    }

    /** Stops the daemon and Gitea. */
    async stop(): Promise<void> {
        if (this.current !== undefined) {
            await this.current.runner.stop();
            this.logs.push(this.current.runner.log);
            this.current.runner.remove();
            this.current = undefined;
        }
        await this.gitea?.stop();
        this.repo?.remove();
        this.gitea?.remove();
    }
}
