/**
 * The environment a container of a pod template gets, resolved as the
 * kubelet does (kwok runs no containers, so the sandbox does it itself):
 * `envFrom` sources in order, then `env` entries, which win; `value`s expand
 * `$(NAME)` from what is defined before them (`$$` escapes); `valueFrom`
 * reads Secret and ConfigMap keys. A missing, non-optional source is an
 * error, as it would keep the container from starting.
 */

/** The slice of a container spec the kubelet reads for env. */
export interface ContainerEnvSpec {
    name?: string;
    envFrom?: {
        prefix?: string;
        secretRef?: { name: string; optional?: boolean };
        configMapRef?: { name: string; optional?: boolean };
    }[];
    env?: {
        name: string;
        value?: string;
        valueFrom?: {
            secretKeyRef?: { name: string; key: string; optional?: boolean };
            configMapKeyRef?: { name: string; key: string; optional?: boolean };
            fieldRef?: { fieldPath: string };
        };
    }[];
}

/** Reads live objects: a Secret's `data` decoded, a ConfigMap's `data`; undefined when absent. */
export interface EnvSources {
    secret(name: string): Record<string, string> | undefined;
    configMap(name: string): Record<string, string> | undefined;
    /** `metadata.namespace` and the like, for `fieldRef`. */
    field(path: string): string | undefined;
}

const ENV_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;

/** Expands `$(NAME)` from `defined`; unknown references stay as written, `$$` gives `$`. */
export function expandEnvValue(value: string, defined: Record<string, string>): string {
    return value.replace(/\$\$|\$\(([^)]*)\)/g, (match, name: string | undefined) => {
        if (match === "$$") return "$";
        return name !== undefined && name in defined ? (defined[name] ?? "") : match;
    });
}

/** The container's environment as the kubelet would start it. */
export function resolveContainerEnv(container: ContainerEnvSpec, sources: EnvSources): Record<string, string> {
    const env: Record<string, string> = {};
    for (const from of container.envFrom ?? []) {
        const ref = from.secretRef ?? from.configMapRef;
        if (ref === undefined) continue;
        const data = from.secretRef ? sources.secret(ref.name) : sources.configMap(ref.name);
        if (data === undefined) {
            if (ref.optional === true) continue;
            throw new Error(`container ${container.name ?? ""}: envFrom ${from.secretRef ? "Secret" : "ConfigMap"} ${ref.name} not found`);
        }
        for (const [key, value] of Object.entries(data)) {
            const name = `${from.prefix ?? ""}${key}`;
            if (ENV_NAME.test(name)) env[name] = value;
        }
    }
    for (const entry of container.env ?? []) {
        const from = entry.valueFrom;
        if (from === undefined) {
            env[entry.name] = expandEnvValue(entry.value ?? "", env);
            continue;
        }
        const keyRef = from.secretKeyRef ?? from.configMapKeyRef;
        if (keyRef !== undefined) {
            const data = from.secretKeyRef ? sources.secret(keyRef.name) : sources.configMap(keyRef.name);
            const value = data?.[keyRef.key];
            if (value === undefined) {
                if (keyRef.optional === true) continue;
                throw new Error(`container ${container.name ?? ""}: env ${entry.name}: key ${keyRef.key} of ${keyRef.name} not found`);
            }
            env[entry.name] = value;
        } else if (from.fieldRef !== undefined) {
            const value = sources.field(from.fieldRef.fieldPath);
            if (value === undefined)
                throw new Error(`container ${container.name ?? ""}: env ${entry.name}: unsupported fieldRef ${from.fieldRef.fieldPath}`);
            env[entry.name] = value;
        } else {
            throw new Error(`container ${container.name ?? ""}: env ${entry.name}: unsupported valueFrom`);
        }
    }
    return env;
}
