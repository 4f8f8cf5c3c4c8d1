/**
 * Real workflow jobs on the sandbox's two runners, run by nektos/act (the
 * engine forgejo-runner forked; forgejo-runner itself cannot be built here)
 * the way forgejo-runner would run them with the runner's own config:
 * `runner.envs` become act's `--env`, `container.options` its
 * `--container-options`, `container.network` its `--network`, and each
 * label of the runner maps to act's platform (`-P name=-self-hosted` for
 * host labels, `-P name=<image>` for docker ones). Where act differs from
 * forgejo-runner, README "Jobs" says so.
 *
 * - ringtail: act's host executor in a transient systemd unit with the
 *   runner unit's `EnvironmentFile=` and `DynamicUser=`, so the job's
 *   process starts with exactly the environment the runner's would.
 * - indri: act's docker executor on this machine, with the environment the
 *   runner container gets from the live pod template (resolved from the live
 *   Secrets, as the kubelet would) and the sandbox dockerd standing in for
 *   the dind sidecar; the job container runs the runner label's image, which
 *   is the local job image under that name (never pulled).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";

import { parse } from "yaml";

import { parseLabel } from "../components/runner-config";
import { shellQuote } from "../components/shell";
import type { Cluster } from "./cluster";
import type { Dockerd } from "./dockerd";
import { resolveContainerEnv, type ContainerEnvSpec } from "./pod-env";
import { writeOciImage } from "./oci-image";
import { IMAGE_DIR, type Ringtail } from "./ringtail";

/** The workflow fixtures (test/fixtures/workflows). */
export const WORKFLOWS = join(__dirname, "..", "test", "fixtures", "workflows");

/** What a job printed (act's output: its log) and how it ended. */
export interface JobRun {
    code: number;
    log: string;
    /** From start to end of the job, seconds. */
    seconds: number;
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
    return { code: r.code, log: r.stdout + r.stderr, seconds: (Date.now() - t0) / 1000 };
}

/** The local job image; each docker label's image name is made a tag of it. */
export const JOB_IMAGE = "ci-registry-auth-sandbox/job:latest";

/**
 * Builds JOB_IMAGE without pulling anything: ringtail's root filesystem
 * (Debian with skopeo, the sandbox registries and the process-list
 * sampler), with the probe image to push at IMAGE_DIR.
 */
export function importJobImage(dockerd: Dockerd): void {
    const r = spawnSync("bash", [join(__dirname, "ringtail", "host"), "rootfs"], { encoding: "utf8", timeout: 600_000 });
    if (r.status !== 0) throw new Error(`sandbox/ringtail/host rootfs failed: ${r.stderr}`);
    const rootfs = r.stdout.trim();
    const overlay = mkdtempSync(join(tmpdir(), "cra-job-image-"));
    try {
        writeOciImage(join(overlay, IMAGE_DIR), "pushed by a docker job of the ci-registry-auth sandbox\n");
        dockerd.importImage(JOB_IMAGE, rootfs, { dir: overlay, paths: [IMAGE_DIR.replace(/^\//, "")] });
    } finally {
        rmSync(overlay, { recursive: true, force: true });
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
    // blumeops registers the runner with RUNNER_LABELS.
    const labels = (env["RUNNER_LABELS"] ?? "").split(",").filter((l) => l !== "");
    const flags = actFlags(config, labels, (image) => {
        const tag = dockerd.docker(["tag", JOB_IMAGE, image]);
        if (tag.code !== 0) throw new Error(`docker tag ${image} failed: ${tag.stderr}`);
        return image;
    });
    const home = mkdtempSync(join(tmpdir(), "cra-act-"));
    try {
        const act = join(process.env["CI_REGISTRY_AUTH_SANDBOX"] ?? "", "bin", "act");
        const r = spawnSync(act, ["push", "-W", workflow, "--no-cache-server", "--pull=false", ...flags, ...varFlags(vars)], {
            cwd: home,
            env: { ...env, ...override, PATH: process.env["PATH"] ?? "/usr/bin:/bin", HOME: home, DOCKER_HOST: dockerd.host },
            encoding: "utf8",
            timeout: 300_000,
        });
        return { code: r.status ?? -1, log: r.stdout + r.stderr, seconds: (Date.now() - t0) / 1000 };
    } finally {
        rmSync(home, { recursive: true, force: true });
    }
}
