/**
 * The offline toolchain is complete and consistent: the checks a user would
 * run (`pulumi version`, `pulumi plugin ls`), plus a real `pulumi up` of a
 * tiny program through the CLI, the nodejs language host and the Kubernetes
 * provider, with a file backend and no network. Run through `npm test`,
 * which puts the toolchain on PATH (toolchain/build --env).
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

const ROOT = join(__dirname, "..", "..");
const toolchain = process.env["CI_REGISTRY_AUTH_TOOLCHAIN"] ?? "";

function versions(): Record<string, string> {
    const text = readFileSync(join(ROOT, "toolchain", "versions.env"), "utf8");
    return Object.fromEntries(
        text
            .split("\n")
            .map((l) => /^([A-Z_]+)=(\S+)$/.exec(l.trim()))
            .filter((m): m is RegExpExecArray => m !== null)
            .map((m) => [m[1]!, m[2]!]),
    );
}

function npmPackage(name: string): { version: string; pulumi?: { name?: string; version?: string } } {
    return JSON.parse(readFileSync(join(ROOT, "node_modules", name, "package.json"), "utf8")) as {
        version: string;
        pulumi?: { name?: string; version?: string };
    };
}

function pulumi(args: string[], env: NodeJS.ProcessEnv = {}, cwd = ROOT): { code: number; out: string } {
    const r = spawnSync("pulumi", args, { cwd, env: { ...process.env, ...env }, encoding: "utf8", timeout: 300_000 });
    return { code: r.status ?? -1, out: `${r.stdout}\n${r.stderr}` };
}

const semver = (v: string): number[] => v.replace(/^v/, "").split(".").map(Number);
const atLeast = (a: string, b: string): boolean => {
    const [x, y] = [semver(a), semver(b)];
    for (let i = 0; i < 3; i++) {
        if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) > (y[i] ?? 0);
    }
    return true;
};

describe("toolchain", () => {
    it("is on PATH from toolchain/build --env", () => {
        expect(toolchain, "run through `npm test`, which evals `toolchain/build --env`").not.toBe("");
        expect(existsSync(join(toolchain, ".complete"))).toBe(true);
    });

    it("puts the built pulumi first on PATH, never the npm downloader", () => {
        const which = execFileSync("sh", ["-c", "command -v pulumi"], { encoding: "utf8" }).trim();
        expect(realpathSync(which)).toBe(realpathSync(join(toolchain, "bin", "pulumi")));
        expect(existsSync(join(ROOT, "node_modules", ".bin", "pulumi"))).toBe(false);
    });

    it("has the pinned CLI, not older than the @pulumi/pulumi SDK", () => {
        const version = execFileSync("pulumi", ["version"], { encoding: "utf8" }).trim();
        expect(version).toBe(`v${versions()["PULUMI_VERSION"]}`);
        expect(atLeast(version, npmPackage("@pulumi/pulumi").version)).toBe(true);
    });

    it("has the nodejs language host beside the CLI", () => {
        expect(existsSync(join(dirname(realpathSync(join(toolchain, "bin", "pulumi"))), "pulumi-language-nodejs"))).toBe(true);
        expect(existsSync(join(toolchain, "bin", "pulumi-language-nodejs"))).toBe(true);
    });

    it("installs the Kubernetes provider at exactly the version @pulumi/kubernetes requests", () => {
        const requested = npmPackage("@pulumi/kubernetes").pulumi;
        expect(requested?.version).toBe(versions()["KUBERNETES_PROVIDER_VERSION"]);
        const r = pulumi(["plugin", "ls", "--json"]);
        expect(r.code).toBe(0);
        const plugins = JSON.parse(r.out.trim().split("\n\n")[0] ?? "[]") as { name: string; kind: string; version: string }[];
        expect(plugins).toContainEqual(expect.objectContaining({ name: "kubernetes", kind: "resource", version: requested?.version }));
    });

    it("refuses to download plugins and ignores ambient ones", () => {
        expect(process.env["PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION"]).toBe("true");
        expect(process.env["PULUMI_IGNORE_AMBIENT_PLUGINS"]).toBe("true");
        expect(process.env["PULUMI_SKIP_UPDATE_CHECK"]).toBe("true");
    });

    it("pins in the Go wrapper modules the versions versions.env names", () => {
        const v = versions();
        const mod = (name: string): string => readFileSync(join(ROOT, "toolchain", "go", name, "go.mod"), "utf8");
        expect(mod("pulumi")).toContain(`github.com/pulumi/pulumi/pkg/v3 v${v["PULUMI_VERSION"]}`);
        expect(mod("language-nodejs")).toContain(`github.com/pulumi/pulumi/sdk/v3 v${v["LANGUAGE_NODEJS_SDK_VERSION"]}`);
        expect(mod("kubernetes")).toContain(`github.com/pulumi/pulumi-kubernetes/provider/v4 ${v["KUBERNETES_PROVIDER_MODULE"]}`);
        expect(mod("kubernetes")).toContain(`github.com/pulumi/pulumi-kubernetes/sdk/v4 v${v["KUBERNETES_PROVIDER_VERSION"]}`);
    });
});

describe("a real pulumi up, offline", () => {
    let work: string;
    let out: string;
    const env = (): NodeJS.ProcessEnv => ({
        PULUMI_BACKEND_URL: `file://${join(work, "state")}`,
        PULUMI_CONFIG_PASSPHRASE: "toolchain-test",
        RENDER_DIR: out,
    });

    beforeAll(() => {
        work = mkdtempSync(join(tmpdir(), "cra-toolchain-"));
        out = join(work, "rendered");
        const project = join(work, "probe");
        execFileSync("mkdir", ["-p", project, join(work, "state")]);
        symlinkSync(join(ROOT, "node_modules"), join(project, "node_modules"));
        writeFileSync(join(project, "Pulumi.yaml"), "name: toolchain-probe\nruntime:\n  name: nodejs\n  options:\n    typescript: true\n");
        writeFileSync(
            join(project, "index.ts"),
            [
                'import * as k8s from "@pulumi/kubernetes";',
                "// Renders instead of applying, so no cluster is needed: this proves the",
                "// CLI, language host, TypeScript and provider plugin work together.",
                'const provider = new k8s.Provider("render", { renderYamlToDirectory: process.env["RENDER_DIR"] });',
                'const cm = new k8s.core.v1.ConfigMap("probe", { metadata: { name: "probe" }, data: { probe: "ok" } }, { provider });',
                "export const name = cm.metadata.name;",
                "",
            ].join("\n"),
        );
    });

    afterAll(() => {
        rmSync(work, { recursive: true, force: true });
    });

    it("runs the program through the language host and the provider, with no download", () => {
        const cwd = join(work, "probe");
        expect(pulumi(["stack", "init", "probe"], env(), cwd).code).toBe(0);
        const up = pulumi(["up", "--yes", "--skip-preview", "--non-interactive", "--stack", "probe"], env(), cwd);
        expect(up.out).not.toMatch(/download|from \$PATH/i);
        expect(up.code, up.out).toBe(0);
        const files = readdirSync(join(out, "1-manifest"));
        expect(files.some((f) => f.includes("configmap") && f.includes("probe"))).toBe(true);
        const state = pulumi(["stack", "export", "--stack", "probe"], env(), cwd);
        expect(state.out).toMatch(/"type": "pulumi:providers:kubernetes"/);
        expect(state.out).toContain(`"version": "${versions()["KUBERNETES_PROVIDER_VERSION"]}"`);
        expect(pulumi(["destroy", "--yes", "--skip-preview", "--non-interactive", "--stack", "probe"], env(), cwd).code).toBe(0);
    });
});
