/**
 * Whether a Forgejo runner's jobs see the key: pure logic over the runner's
 * own configuration (`config.yaml`), its registration labels and the docker
 * CLI rules its `container.options` follow. No Pulumi here.
 *
 * How forgejo-runner hands environment to jobs (forgejo-runner v12 and its
 * act fork; docs/jobs.md):
 * - host labels (`name:host`) run jobs as processes of the runner: they
 *   inherit its whole environment unless the workflow, the job or
 *   `runner.envs` defines the same name;
 * - docker labels (`name:docker://image`) run jobs in containers that get
 *   none of the runner's environment, except what `container.options`
 *   forwards with a bare `-e NAME`;
 * - `runner.envs` is merged into every job's environment last and would
 *   shadow the key with whatever the config file holds.
 *
 * Nothing here ever returns or embeds a value from the config: reports name
 * settings, paths and labels only, because a config may hold secrets.
 */
import { parseDocument } from "yaml";

/** The settings of forgejo-runner's `config.yaml` that decide what jobs see. */
export interface RunnerConfigFile {
    /** Names defined by `runner.envs` (values are never kept). */
    envNames: string[];
    /** `runner.env_file`, when set. */
    envFile?: string;
    /** `runner.file`, the registration file, when set (default `.runner`). */
    registrationFile?: string;
    /** `runner.labels`, when set and non-empty: they replace the registration's. */
    labels?: string[];
    /** `container.options`, when set. */
    containerOptions?: string;
}

/** Where a config came from, for messages and fixes. */
export interface ConfigOrigin {
    /** e.g. `ConfigMap forgejo-runner/forgejo-runner-config-x (key config.yaml)` or a host path. */
    where: string;
    /** How an operator changes it, e.g. `in Git (the ConfigMap's config.yaml), for Argo CD`. */
    howToEdit: string;
}

/** The runner's config as found: defaults (no --config), parsed, or a problem. */
export type RunnerConfigRead =
    | { kind: "defaults"; why: string }
    | { kind: "file"; origin: ConfigOrigin; config: RunnerConfigFile }
    | { kind: "problem"; origin?: ConfigOrigin; problem: string };

/**
 * Parses `config.yaml`. Returns a problem, never a value from the text,
 * when it does not parse or has the wrong shape.
 */
export function parseRunnerConfig(text: string): { config: RunnerConfigFile } | { problem: string } {
    const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: false });
    const first = doc.errors[0];
    if (first !== undefined) {
        // The library's message quotes the offending line, which may hold a
        // secret: report only where it is.
        const at = first.linePos?.[0];
        return { problem: `does not parse as YAML${at ? ` (line ${at.line}, column ${at.col})` : ""}` };
    }
    const root: unknown = doc.toJS();
    if (root === null || root === undefined) {
        return { config: { envNames: [] } };
    }
    if (!isRecord(root)) {
        return { problem: "is not a YAML mapping" };
    }
    const runner = root["runner"] ?? {};
    const container = root["container"] ?? {};
    if (!isRecord(runner)) {
        return { problem: "has a `runner` that is not a mapping" };
    }
    if (!isRecord(container)) {
        return { problem: "has a `container` that is not a mapping" };
    }
    const envs = runner["envs"] ?? {};
    if (!isRecord(envs)) {
        return { problem: "has a `runner.envs` that is not a mapping" };
    }
    const labels = runner["labels"];
    if (labels !== undefined && labels !== null && !(Array.isArray(labels) && labels.every((l) => typeof l === "string"))) {
        return { problem: "has a `runner.labels` that is not a list of strings" };
    }
    const str = (v: unknown, name: string): string | undefined | { problem: string } =>
        v === undefined || v === null || v === ""
            ? undefined
            : typeof v === "string"
              ? v
              : { problem: `has a \`${name}\` that is not a string` };
    const envFile = str(runner["env_file"], "runner.env_file");
    const registrationFile = str(runner["file"], "runner.file");
    const containerOptions = str(container["options"], "container.options");
    for (const v of [envFile, registrationFile, containerOptions]) {
        if (typeof v === "object") {
            return v;
        }
    }
    return {
        config: {
            envNames: Object.keys(envs),
            ...(typeof envFile === "string" ? { envFile } : {}),
            ...(typeof registrationFile === "string" ? { registrationFile } : {}),
            ...(Array.isArray(labels) && labels.length > 0 ? { labels: labels } : {}),
            ...(typeof containerOptions === "string" ? { containerOptions } : {}),
        },
    };
}

function isRecord(v: unknown): v is Record<string, unknown> {
    return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Splits `text` into words as a POSIX shell does with quotes and
 * backslashes (no expansion, no operators). Undefined when a quote is left
 * open or the text ends in a lone backslash.
 */
export function shellSplit(text: string): string[] | undefined {
    const words: string[] = [];
    let word = "";
    let inWord = false;
    let i = 0;
    while (i < text.length) {
        const c = text.charAt(i);
        if (c === "'") {
            const end = text.indexOf("'", i + 1);
            if (end < 0) return undefined;
            word += text.slice(i + 1, end);
            inWord = true;
            i = end + 1;
        } else if (c === '"') {
            i++;
            for (;;) {
                if (i >= text.length) return undefined;
                const d = text.charAt(i);
                if (d === '"') break;
                if (d === "\\" && i + 1 < text.length && '$`"\\\n'.includes(text.charAt(i + 1))) {
                    word += text.charAt(i + 1);
                    i += 2;
                } else {
                    word += d;
                    i++;
                }
            }
            inWord = true;
            i++;
        } else if (c === "\\") {
            if (i + 1 >= text.length) return undefined;
            if (text.charAt(i + 1) !== "\n") {
                word += text.charAt(i + 1);
                inWord = true;
            }
            i += 2;
        } else if (/\s/.test(c)) {
            if (inWord) words.push(word);
            word = "";
            inWord = false;
            i++;
        } else {
            word += c;
            inWord = true;
            i++;
        }
    }
    if (inWord) words.push(word);
    return words;
}

/** What `container.options` does with one variable. */
export type OptionsEnv =
    /** A bare `-e NAME`: the job container gets the runner's own value. */
    | "forwarded"
    /** `-e NAME=value`: a literal value written in the config. */
    | "literal"
    /** `-e NAME=`: set, and empty. */
    | "empty"
    /** Not mentioned. */
    | "absent"
    /** The options do not split into words. */
    | "unparsable";

/**
 * What docker's CLI rules (`-e`, `--env`, `--env=`, `-eNAME`) make of
 * `envVar` in `options`; the last mention wins, as in docker.
 */
export function optionsEnv(options: string | undefined, envVar: string): OptionsEnv {
    if (options === undefined) return "absent";
    const words = shellSplit(options);
    if (words === undefined) return "unparsable";
    let result: OptionsEnv = "absent";
    for (let i = 0; i < words.length; i++) {
        const w = words[i] ?? "";
        let value: string | undefined;
        if (w === "-e" || w === "--env") {
            value = words[++i];
        } else if (w.startsWith("--env=")) {
            value = w.slice("--env=".length);
        } else if (/^-e./.test(w)) {
            // pflag shorthand with its value attached (`-eNAME`, `-e=NAME`).
            value = w.slice(2).replace(/^=/, "");
        }
        if (value === undefined) continue;
        const eq = value.indexOf("=");
        const name = eq < 0 ? value : value.slice(0, eq);
        if (name !== envVar) continue;
        result = eq < 0 ? "forwarded" : eq === value.length - 1 ? "empty" : "literal";
    }
    return result;
}

/** One runner label: `name[:scheme[:arg]]` (forgejo-runner `labels.Parse`). */
export interface RunnerLabel {
    name: string;
    /** `host`, `docker`, `lxc`, or whatever else was written. */
    scheme: string;
    arg: string;
}

/**
 * Parses a label as forgejo-runner does (`SplitN(label, ":", 3)`): a bare
 * name means the docker scheme with its default image.
 */
export function parseLabel(label: string): RunnerLabel {
    const [name = "", scheme = "docker", ...rest] = label.split(":");
    return { name, scheme, arg: rest.join(":") };
}

/** The runner's labels as found: from its registration file, or a problem. */
export type LabelsRead =
    | { kind: "labels"; where: string; labels: string[] }
    | { kind: "problem"; where: string; problem: string }
    /** Not read: the executor is known (indri runs the docker executor). */
    | { kind: "assumed"; scheme: "docker"; why: string };

/**
 * Parses forgejo-runner's registration file (`.runner`, JSON) for its
 * labels. Never returns a value from it (it holds the runner's token).
 */
export function parseRegistration(text: string): { labels: string[] } | { problem: string } {
    let root: unknown;
    try {
        root = JSON.parse(text);
    } catch {
        return { problem: "does not parse as JSON" };
    }
    if (!isRecord(root)) {
        return { problem: "is not a JSON object" };
    }
    const labels = root["labels"];
    if (!Array.isArray(labels) || !labels.every((l) => typeof l === "string")) {
        return { problem: "has no `labels` list" };
    }
    return { labels: labels };
}

/** What the stack reports about jobs. */
export interface JobsVerdict {
    jobsSeeKey: boolean;
    /** How jobs get the variable, or why they don't. Never a value. */
    jobRoute: string;
    /** When jobsSeeKey is false: the one change to make. */
    fix?: string;
}

/** Everything {@link judgeJobs} weighs. */
export interface JobsInput {
    envVar: string;
    config: RunnerConfigRead;
    labels: LabelsRead;
    /** How to edit the config when there is none yet, e.g. the NixOS option or the ConfigMap to mount. */
    addConfig: string;
}

/**
 * Decides whether every job the runner takes sees `envVar` with the runner's
 * value, assuming the runner process holds it (checked separately): the
 * config must be readable and must not define the variable itself, and
 * every executor its labels name must hand it to jobs.
 */
export function judgeJobs(input: JobsInput): JobsVerdict {
    const v = input.envVar;
    const { config } = input;
    if (config.kind === "problem") {
        const where = config.origin?.where ?? "the runner's config";
        return {
            jobsSeeKey: false,
            jobRoute: `cannot tell: ${where} ${config.problem}`,
            fix: `make ${where} readable and valid (the runner reads it at start)`,
        };
    }
    const file = config.kind === "file" ? config.config : { envNames: [] };
    const origin = config.kind === "file" ? config.origin : undefined;
    const where = origin?.where ?? "the config";
    const edit = origin ? `in ${origin.where} (${origin.howToEdit})` : input.addConfig;
    if (file.envNames.includes(v)) {
        return {
            jobsSeeKey: false,
            jobRoute: `error: runner.envs in ${where} defines ${v}, which puts a key in the config file and overrides the delivered one in every job`,
            fix: `remove ${v} from runner.envs ${edit}, and rotate the key if a real one was written there`,
        };
    }
    const executors = executorsOf(file, input.labels, where);
    if ("jobsSeeKey" in executors) return executors;
    const routes: string[] = [];
    for (const { scheme, names } of executors.schemes) {
        const route = schemeRoute(scheme, names, { envVar: v, containerOptions: file.containerOptions, where, edit });
        if (typeof route !== "string") return route;
        routes.push(route);
    }
    return { jobsSeeKey: true, jobRoute: routes.join("; ") };
}

/** The executors (label schemes) the runner runs jobs on, from its config's labels, its registration, or an assumption; or why not known. */
function executorsOf(
    file: Pick<RunnerConfigFile, "labels">,
    labels: LabelsRead,
    where: string,
): { schemes: { scheme: string; names: string[] }[] } | JobsVerdict {
    let schemes: { scheme: string; names: string[] }[];
    let labelsFrom: string;
    if (file.labels !== undefined) {
        schemes = groupSchemes(file.labels);
        labelsFrom = `runner.labels in ${where}`;
    } else if (labels.kind === "labels") {
        schemes = groupSchemes(labels.labels);
        labelsFrom = labels.where;
    } else if (labels.kind === "assumed") {
        schemes = [{ scheme: labels.scheme, names: [] }];
        labelsFrom = labels.why;
    } else {
        return {
            jobsSeeKey: false,
            jobRoute: `cannot tell which executor runs jobs: ${labels.where} ${labels.problem}`,
            fix: `check ${labels.where} (the runner writes it at registration)`,
        };
    }
    if (schemes.length === 0) {
        return {
            jobsSeeKey: false,
            jobRoute: `cannot tell which executor runs jobs: ${labelsFrom} lists no labels`,
            fix: `check ${labelsFrom}`,
        };
    }
    return { schemes };
}

/** How jobs of one executor get the variable (a route), or the verdict that they don't. */
function schemeRoute(
    scheme: string,
    names: string[],
    c: { envVar: string; containerOptions: string | undefined; where: string; edit: string },
): string | JobsVerdict {
    const v = c.envVar;
    const labelled = names.length > 0 ? ` (labels ${names.join(", ")})` : "";
    if (scheme === "host") {
        return `host executor${labelled}: jobs inherit the runner's environment`;
    }
    if (scheme !== "docker") {
        return {
            jobsSeeKey: false,
            jobRoute: `${scheme} executor${labelled}: this program cannot tell what its jobs see`,
            fix: `run jobs that need ${v} on host or docker labels`,
        };
    }
    const docker = `docker executor${labelled}`;
    switch (optionsEnv(c.containerOptions, v)) {
        case "forwarded":
            return `${docker}: container.options forwards the runner's ${v} into job containers (-e ${v})`;
        case "literal":
            return {
                jobsSeeKey: false,
                jobRoute: `error: ${docker}: container.options in ${c.where} sets ${v} to a value written in the config`,
                fix: `replace that -e ${v}=... with a bare -e ${v} in container.options ${c.edit}, and rotate the key if a real one was written there`,
            };
        case "empty":
            return {
                jobsSeeKey: false,
                jobRoute: `${docker}: container.options sets ${v} empty (-e ${v}=)`,
                fix: `write a bare -e ${v} (no '=') in container.options ${c.edit}`,
            };
        case "unparsable":
            return {
                jobsSeeKey: false,
                jobRoute: `${docker}: container.options in ${c.where} has an unbalanced quote or trailing backslash`,
                fix: `fix the quoting of container.options ${c.edit}`,
            };
        case "absent":
            return {
                jobsSeeKey: false,
                jobRoute: `${docker}: job containers get none of the runner's environment and container.options does not forward ${v}`,
                fix:
                    c.containerOptions === undefined
                        ? `set container.options: "-e ${v}" ${c.edit}`
                        : `append -e ${v} to container.options ${c.edit}`,
            };
    }
}

function groupSchemes(labels: string[]): { scheme: string; names: string[] }[] {
    const groups = new Map<string, string[]>();
    for (const label of labels) {
        const { name, scheme } = parseLabel(label);
        groups.set(scheme, [...(groups.get(scheme) ?? []), name]);
    }
    return [...groups].map(([scheme, names]) => ({ scheme, names }));
}

const RUNNER_BINARIES = /^(forgejo-runner|act_runner|act-runner|gitea-runner)$/;

/**
 * The `--config` of the forgejo-runner daemon in an argv, also when the
 * daemon is started from a shell script (`sh -c "... exec forgejo-runner
 * daemon --config /config/config.yaml"`, as blumeops does). `undefined`
 * when no daemon command is found; `{ path: undefined }` when it has no
 * --config.
 */
export function daemonConfigPath(argv: string[]): { path: string | undefined } | undefined {
    const candidates: string[][] = [argv];
    for (const element of argv) {
        if (/\s/.test(element)) {
            for (const line of element.split(/\n|;|&&|\|\|/)) {
                const words = shellSplit(line);
                if (words !== undefined) candidates.push(words);
            }
        }
    }
    for (const words of candidates) {
        const at = words.findIndex((w) => RUNNER_BINARIES.test(w.split("/").pop() ?? ""));
        if (at < 0 || !words.slice(at + 1).includes("daemon")) continue;
        const flags = words.slice(at + 1);
        for (let i = 0; i < flags.length; i++) {
            const w = flags[i] ?? "";
            if (w === "--config" || w === "-c") return { path: flags[i + 1] };
            const attached = /^(?:--config=|-c=?)(.+)$/.exec(w);
            if (attached?.[1] !== undefined) return { path: attached[1] };
        }
        return { path: undefined };
    }
    return undefined;
}
