/** Whether a runner's jobs see the key: the pure reading of its config, labels and Deployment. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";

import { runnerConfigSource, type DeploymentView } from "../../components/kubernetes/live-deployment";
import {
    judgeJobs,
    optionsEnv,
    parseLabel,
    parseRegistration,
    parseRunnerConfig,
    shellSplit,
    type JobsInput,
    type RunnerConfigFile,
    daemonConfigPath,
} from "../../components/runner-config";
import { shellQuote } from "../../components/shell";
import { INDRI_CONFIG } from "../support/harness";

const VAR = "ZOT_CI_API_KEY";
const KEY = "zak_config_4e5f6a7b8c9d0e1f2a3b";

describe("parseRunnerConfig", () => {
    it("reads blumeops's config: env names only, the registration file, the options", () => {
        expect(parseRunnerConfig(INDRI_CONFIG)).toEqual({
            config: { envNames: ["DOCKER_HOST", "TZ"], registrationFile: "/data/.runner", containerOptions: "-e ZOT_CI_API_KEY" },
        });
    });

    it("keeps runner.labels and env_file, and reads an empty file as defaults", () => {
        expect(parseRunnerConfig("runner:\n  env_file: .env\n  labels: [a:host, 'b:docker://x:1']\n")).toEqual({
            config: { envNames: [], envFile: ".env", labels: ["a:host", "b:docker://x:1"] },
        });
        expect(parseRunnerConfig("")).toEqual({ config: { envNames: [] } });
        expect(parseRunnerConfig("runner:\n  labels: []\n")).toEqual({ config: { envNames: [] } });
    });

    it("gives a problem that never quotes the text, which may hold a secret", () => {
        const broken = `runner:\n  envs:\n    ${VAR}: ${KEY}\n   bad: [\n`;
        const result = parseRunnerConfig(broken);
        expect(result).toMatchObject({ problem: expect.stringMatching(/^does not parse as YAML \(line \d+, column \d+\)$/) as unknown });
        expect(JSON.stringify(result)).not.toContain(KEY);
        expect(parseRunnerConfig("- a\n- b\n")).toEqual({ problem: "is not a YAML mapping" });
        expect(parseRunnerConfig("runner: [1]\n")).toEqual({ problem: "has a `runner` that is not a mapping" });
        expect(parseRunnerConfig("runner:\n  envs: [A]\n")).toEqual({ problem: "has a `runner.envs` that is not a mapping" });
        expect(parseRunnerConfig("runner:\n  labels: a:host\n")).toEqual({
            problem: "has a `runner.labels` that is not a list of strings",
        });
        expect(parseRunnerConfig("container:\n  options: [a]\n")).toEqual({ problem: "has a `container.options` that is not a string" });
    });
});

describe("shellSplit", () => {
    it("splits like a POSIX shell: quotes, backslashes, no expansion", () => {
        expect(shellSplit(`-e ZOT_CI_API_KEY --add-host 'a b' "c \\"d\\"" e\\ f $HOME`)).toEqual([
            "-e",
            "ZOT_CI_API_KEY",
            "--add-host",
            "a b",
            'c "d"',
            "e f",
            "$HOME",
        ]);
        expect(shellSplit("  ")).toEqual([]);
        expect(shellSplit("''")).toEqual([""]);
        expect(shellSplit("'open")).toBeUndefined();
        expect(shellSplit('"open')).toBeUndefined();
        expect(shellSplit("trailing\\")).toBeUndefined();
    });

    it("gives back any words that were shell-quoted and joined", () => {
        fc.assert(
            fc.property(fc.array(fc.string({ maxLength: 12 }).filter((w) => !w.includes("\0"))), (words) => {
                expect(shellSplit(words.map(shellQuote).join(" "))).toEqual(words);
            }),
        );
    });
});

describe("optionsEnv (docker CLI rules, as container.options is parsed)", () => {
    it.each([
        ["-e ZOT_CI_API_KEY", "forwarded"],
        ["--env ZOT_CI_API_KEY", "forwarded"],
        ["--env=ZOT_CI_API_KEY", "forwarded"],
        ["-eZOT_CI_API_KEY", "forwarded"],
        ["-e=ZOT_CI_API_KEY", "forwarded"],
        ["--privileged -v /a:/b -e ZOT_CI_API_KEY --add-host x:1.2.3.4", "forwarded"],
        ["-e ZOT_CI_API_KEY=", "empty"],
        [`-e ZOT_CI_API_KEY=${KEY}`, "literal"],
        ["-e ZOT_CI_API_KEY=x -e ZOT_CI_API_KEY", "forwarded"],
        ["-e ZOT_CI_API_KEY -e ZOT_CI_API_KEY=", "empty"],
        ["-e ZOT_CI_API_KEY_OLD -e OTHER", "absent"],
        ["-v ZOT_CI_API_KEY", "absent"],
        ["", "absent"],
        ["-e 'ZOT_CI_API_KEY", "unparsable"],
    ])("%s: %s", (options, expected) => {
        expect(optionsEnv(options, VAR)).toBe(expected);
    });

    it("is absent when there are no options", () => {
        expect(optionsEnv(undefined, VAR)).toBe("absent");
    });
});

describe("parseLabel and parseRegistration", () => {
    it("reads labels as forgejo-runner does: a bare name is docker", () => {
        expect(parseLabel("nix-container-builder:host")).toEqual({ name: "nix-container-builder", scheme: "host", arg: "" });
        expect(parseLabel("k8s:docker://registry.ops.eblu.me/blumeops/runner-job-image:v0.20.1")).toEqual({
            name: "k8s",
            scheme: "docker",
            arg: "//registry.ops.eblu.me/blumeops/runner-job-image:v0.20.1",
        });
        expect(parseLabel("ubuntu-latest")).toEqual({ name: "ubuntu-latest", scheme: "docker", arg: "" });
    });

    it("takes the labels of a registration file and nothing else", () => {
        expect(parseRegistration('{"token":"t","labels":["a:host"]}')).toEqual({ labels: ["a:host"] });
        expect(parseRegistration("{")).toEqual({ problem: "does not parse as JSON" });
        expect(parseRegistration("[]")).toEqual({ problem: "is not a JSON object" });
        expect(parseRegistration('{"labels":"a:host"}')).toEqual({ problem: "has no `labels` list" });
    });
});

describe("judgeJobs", () => {
    const file = (config: Partial<RunnerConfigFile>): JobsInput["config"] => ({
        kind: "file",
        origin: { where: "/etc/runner/config.yaml", howToEdit: "NixOS: settings" },
        config: { envNames: [], ...config },
    });
    const host: JobsInput["labels"] = { kind: "labels", where: "/var/lib/r/.runner", labels: ["nix-container-builder:host"] };
    const docker: JobsInput["labels"] = { kind: "assumed", scheme: "docker", why: "the docker executor" };
    const judge = (config: JobsInput["config"], labels: JobsInput["labels"]) =>
        judgeJobs({ envVar: VAR, config, labels, addConfig: "in the NixOS settings" });

    it("host labels inherit the runner's environment, config or none", () => {
        expect(judge(file({}), host)).toEqual({
            jobsSeeKey: true,
            jobRoute: "host executor (labels nix-container-builder): jobs inherit the runner's environment",
        });
        expect(judge({ kind: "defaults", why: "no --config" }, host).jobsSeeKey).toBe(true);
    });

    it("docker jobs see the key only when container.options forwards it bare", () => {
        expect(judge(file({ containerOptions: "-e ZOT_CI_API_KEY" }), docker)).toEqual({
            jobsSeeKey: true,
            jobRoute: "docker executor: container.options forwards the runner's ZOT_CI_API_KEY into job containers (-e ZOT_CI_API_KEY)",
        });
        expect(judge(file({}), docker)).toEqual({
            jobsSeeKey: false,
            jobRoute:
                "docker executor: job containers get none of the runner's environment and container.options does not forward ZOT_CI_API_KEY",
            fix: 'set container.options: "-e ZOT_CI_API_KEY" in /etc/runner/config.yaml (NixOS: settings)',
        });
        expect(judge(file({ containerOptions: "--privileged" }), docker).fix).toBe(
            "append -e ZOT_CI_API_KEY to container.options in /etc/runner/config.yaml (NixOS: settings)",
        );
        expect(judge({ kind: "defaults", why: "no --config" }, docker).fix).toBe(
            'set container.options: "-e ZOT_CI_API_KEY" in the NixOS settings',
        );
        expect(judge(file({ containerOptions: "-e ZOT_CI_API_KEY=" }), docker)).toMatchObject({
            jobsSeeKey: false,
            jobRoute: expect.stringMatching(/empty/) as unknown,
        });
        expect(judge(file({ containerOptions: "-e 'x" }), docker)).toMatchObject({
            jobsSeeKey: false,
            fix: expect.stringMatching(/quoting/) as unknown,
        });
    });

    it("calls a key written into the config an error, without repeating it", () => {
        const literal = judge(file({ containerOptions: `-e ZOT_CI_API_KEY=${KEY}` }), docker);
        expect(literal).toMatchObject({
            jobsSeeKey: false,
            jobRoute: expect.stringMatching(/^error: /) as unknown,
            fix: expect.stringMatching(/rotate/) as unknown,
        });
        const envs = judge(file({ envNames: ["TZ", VAR] }), host);
        expect(envs).toMatchObject({
            jobsSeeKey: false,
            jobRoute: expect.stringMatching(/^error: runner\.envs in \/etc\/runner\/config\.yaml defines ZOT_CI_API_KEY/) as unknown,
            fix: "remove ZOT_CI_API_KEY from runner.envs in /etc/runner/config.yaml (NixOS: settings), and rotate the key if a real one was written there",
        });
        expect(JSON.stringify([literal, envs])).not.toContain(KEY);
    });

    it("every label must reach the key: one docker label without forwarding fails the runner", () => {
        const mixed: JobsInput["labels"] = { kind: "labels", where: "/r/.runner", labels: ["a:host", "b:docker://img", "c"] };
        expect(judge(file({}), mixed)).toMatchObject({
            jobsSeeKey: false,
            jobRoute: expect.stringMatching(/^docker executor \(labels b, c\)/) as unknown,
        });
        expect(judge(file({ containerOptions: "-e ZOT_CI_API_KEY" }), mixed).jobsSeeKey).toBe(true);
        expect(judge(file({}), { kind: "labels", where: "/r/.runner", labels: ["x:lxc://debian"] })).toMatchObject({ jobsSeeKey: false });
    });

    it("runner.labels in the config replace the registration's", () => {
        expect(judge(file({ labels: ["a:docker://img"] }), host)).toMatchObject({
            jobsSeeKey: false,
            jobRoute: expect.stringMatching(/^docker executor \(labels a\)/) as unknown,
        });
        expect(judge(file({ labels: ["a:host"] }), { kind: "problem", where: "/r/.runner", problem: "is missing" }).jobsSeeKey).toBe(true);
    });

    it("cannot tell without a readable config or registration, and says which", () => {
        expect(judge({ kind: "problem", origin: { where: "/c.yaml", howToEdit: "x" }, problem: "is missing or unreadable" }, host)).toEqual(
            {
                jobsSeeKey: false,
                jobRoute: "cannot tell: /c.yaml is missing or unreadable",
                fix: "make /c.yaml readable and valid (the runner reads it at start)",
            },
        );
        expect(judge(file({}), { kind: "problem", where: "/r/.runner", problem: "does not parse as JSON" })).toMatchObject({
            jobsSeeKey: false,
            jobRoute: "cannot tell which executor runs jobs: /r/.runner does not parse as JSON",
        });
        expect(judge(file({}), { kind: "labels", where: "/r/.runner", labels: [] })).toMatchObject({ jobsSeeKey: false });
    });
});

describe("the indri runner's config, from its live Deployment", () => {
    const deployment = (container: Record<string, unknown>, volumes: unknown[]): DeploymentView =>
        ({ spec: { template: { spec: { containers: [{ name: "runner", ...container }], volumes } } } }) as DeploymentView;
    const blumeops = deployment(
        {
            command: [
                "/bin/sh",
                "-c",
                'echo "Waiting for Docker daemon..."\nif [ ! -f /data/.runner ]; then\n  forgejo-runner register \\\n    --no-interactive\nfi\n\n# Start daemon\nexec forgejo-runner daemon --config /config/config.yaml\n',
            ],
            volumeMounts: [
                { name: "data", mountPath: "/data" },
                { name: "config", mountPath: "/config" },
            ],
        },
        [
            { name: "data", emptyDir: {} },
            { name: "config", configMap: { name: "forgejo-runner-config-h7k2" } },
        ],
    );

    it("follows blumeops's shell command to the kustomize-named ConfigMap", () => {
        expect(runnerConfigSource(blumeops, "runner")).toEqual({
            kind: "configMap",
            name: "forgejo-runner-config-h7k2",
            key: "config.yaml",
            path: "/config/config.yaml",
        });
    });

    it("reads every spelling of the flag, in command or args", () => {
        expect(daemonConfigPath(["forgejo-runner", "daemon", "--config=/c/x.yaml"])).toEqual({ path: "/c/x.yaml" });
        expect(daemonConfigPath(["/bin/forgejo-runner", "daemon", "-c", "/c/x.yaml"])).toEqual({ path: "/c/x.yaml" });
        expect(daemonConfigPath(["act_runner", "-c/c/x.yaml", "daemon"])).toEqual({ path: "/c/x.yaml" });
        expect(daemonConfigPath(["sh", "-c", "forgejo-runner daemon"])).toEqual({ path: undefined });
        expect(daemonConfigPath(["sh", "-c", "forgejo-runner register --config /c.yaml"])).toBeUndefined();
        expect(
            runnerConfigSource(
                deployment(
                    { args: ["daemon", "--config", "/config/config.yaml"], volumeMounts: [{ name: "config", mountPath: "/config" }] },
                    [{ name: "config", configMap: { name: "cm" } }],
                ),
                "runner",
            ),
        ).toMatchObject({ kind: "configMap", name: "cm", key: "config.yaml" });
    });

    it("honours subPath and items", () => {
        const subPath = deployment(
            {
                command: ["forgejo-runner", "daemon", "--config", "/etc/runner.yaml"],
                volumeMounts: [{ name: "c", mountPath: "/etc/runner.yaml", subPath: "runner.yaml" }],
            },
            [{ name: "c", configMap: { name: "cm" } }],
        );
        expect(runnerConfigSource(subPath, "runner")).toMatchObject({ kind: "configMap", name: "cm", key: "runner.yaml" });
        const items = deployment(
            {
                command: ["forgejo-runner", "daemon", "--config", "/config/runner/config.yaml"],
                volumeMounts: [{ name: "c", mountPath: "/config" }],
            },
            [{ name: "c", configMap: { name: "cm", items: [{ key: "cfg", path: "runner/config.yaml" }] } }],
        );
        expect(runnerConfigSource(items, "runner")).toMatchObject({ kind: "configMap", name: "cm", key: "cfg" });
    });

    it("says why when the config cannot be found", () => {
        expect(runnerConfigSource(deployment({ command: ["forgejo-runner", "daemon"] }, []), "runner")).toEqual({
            kind: "defaults",
            why: 'container "runner" starts forgejo-runner daemon without --config',
        });
        expect(runnerConfigSource(deployment({ command: ["sleep", "infinity"] }, []), "runner")).toMatchObject({ kind: "problem" });
        expect(runnerConfigSource(deployment({}, []), "runner")).toMatchObject({ kind: "problem" });
        expect(runnerConfigSource(deployment({ command: ["forgejo-runner", "daemon", "-c", "/x/c.yaml"] }, []), "runner")).toEqual({
            kind: "problem",
            problem: 'the daemon\'s --config /x/c.yaml is on no volume of container "runner"',
        });
        const secret = deployment(
            { command: ["forgejo-runner", "daemon", "-c", "/x/c.yaml"], volumeMounts: [{ name: "s", mountPath: "/x" }] },
            [{ name: "s", secret: { secretName: "s" } }],
        );
        expect(runnerConfigSource(secret, "runner")).toMatchObject({
            kind: "problem",
            problem: expect.stringMatching(/not a ConfigMap/) as unknown,
        });
        const nested = deployment(
            { command: ["forgejo-runner", "daemon", "-c", "/x/a/c.yaml"], volumeMounts: [{ name: "c", mountPath: "/x" }] },
            [{ name: "c", configMap: { name: "cm" } }],
        );
        expect(runnerConfigSource(nested, "runner")).toMatchObject({
            kind: "problem",
            problem: expect.stringMatching(/not a file of ConfigMap cm/) as unknown,
        });
    });
});
