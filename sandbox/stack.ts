/**
 * Runs Pulumi programs for the sandbox tests through the Automation API:
 * the real engine (the toolchain's `pulumi` on PATH), real providers from the
 * project's PULUMI_HOME, a `file://` backend in a temp dir, passphrase
 * secrets. Captures every line of output and every engine event so tests
 * can scan them for the key.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { LocalWorkspace, type EngineEvent, type PulumiFn, type Stack } from "@pulumi/pulumi/automation";

import type { KubernetesRunnerConfig } from "../components/settings/config";
import { KubernetesRunner } from "../components/kubernetes/runner";

export interface Run {
    stack: Stack;
    /** The `file://` backend's directory: state, its backups and history. */
    backend: string;
    /** Everything the engine printed and every event, in order. */
    transcript: string[];
    /** Removes the stack's backend directory. */
    dispose(): void;
}

/** A fresh stack for an inline program, with its own file backend. */
export async function inlineStack(projectName: string, stackName: string, program: PulumiFn): Promise<Run> {
    const backend = mkdtempSync(join(tmpdir(), "cra-backend-"));
    const stack = await LocalWorkspace.createOrSelectStack(
        { projectName, stackName, program },
        {
            projectSettings: { name: projectName, runtime: "nodejs", backend: { url: `file://${backend}` } },
            envVars: { PULUMI_CONFIG_PASSPHRASE: "sandbox-passphrase", PULUMI_BACKEND_URL: `file://${backend}` },
            secretsProvider: "passphrase",
        },
    );
    return {
        stack,
        backend,
        transcript: [],
        dispose: () => {
            rmSync(backend, { recursive: true, force: true });
        },
    };
}

/** Options that record output and events into `run.transcript`. */
export function recording(run: Run): { onOutput: (s: string) => void; onEvent: (e: EngineEvent) => void } {
    return {
        onOutput: (s: string) => run.transcript.push(s),
        onEvent: (e: EngineEvent) => run.transcript.push(JSON.stringify(e)),
    };
}

/** One step of a preview or update that is not `same` or `read`: the operation, the type, the resource's name. */
export interface StepChange {
    op: string;
    type: string;
    name: string;
}

/**
 * `recording(run)` that also lists, in `changes`, every step that is not
 * `same` or `read`, as the engine announces it (its pre-event), default
 * providers included (the change summary leaves those out).
 */
export function recordingChanges(run: Run): { options: ReturnType<typeof recording>; changes: StepChange[] } {
    const rec = recording(run);
    const changes: StepChange[] = [];
    const onEvent = (e: EngineEvent): void => {
        rec.onEvent(e);
        const pre = e.resourcePreEvent?.metadata;
        if (pre !== undefined && !["same", "read"].includes(pre.op)) {
            changes.push({ op: pre.op, type: pre.type, name: pre.urn.split("::").pop() ?? "" });
        }
    };
    return { options: { ...rec, onEvent }, changes };
}

/**
 * The transcript without debug diagnostics: Pulumi's Node.js runtime sends
 * every RPC response, secrets included, as debug events (README, "Security
 * notes"), which are shown only with --debug.
 */
export function nonDebug(run: Run): string {
    return run.transcript.filter((line) => !line.includes('"prefix":"debug: "')).join("\n");
}

/**
 * Everything the backend has persisted for the stack (checkpoint, backups,
 * history), decompressed: what an operator's state really holds. (The
 * Automation API's exportStack shows secrets decrypted, so it is no test.)
 */
export function persistedState(run: Run): string {
    const texts: string[] = [];
    const walk = (dir: string): void => {
        for (const entry of readdirSync(dir, { withFileTypes: true })) {
            const path = join(dir, entry.name);
            if (entry.isDirectory()) {
                walk(path);
            } else {
                const data = readFileSync(path);
                texts.push((path.endsWith(".gz") ? gunzipSync(data) : data).toString("utf8"));
            }
        }
    };
    walk(run.backend);
    return texts.join("\n");
}

/**
 * An inline program of the indri runner alone, given the key's fingerprint
 * (what the onepassword provider would read), exporting its facts.
 */
export function indriProgram(keyFingerprint: string, runner: KubernetesRunnerConfig): PulumiFn {
    return () => {
        const r = new KubernetesRunner("indri", {
            runner,
            item: "zot-ci-apikey",
            field: "credential",
            envVar: "ZOT_CI_API_KEY",
            keyFingerprint,
        });
        return Promise.resolve({
            hasKey: r.hasKey,
            secretName: r.secretName,
            externalSecretName: r.externalSecretName,
            secretFingerprint: r.secretFingerprint,
            templateFingerprint: r.templateFingerprint,
            envWired: r.envWired,
            rolledOut: r.rolledOut,
            readyReplicas: r.readyReplicas,
            jobsSeeKey: r.jobsSeeKey,
            jobRoute: r.jobRoute,
        });
    };
}
