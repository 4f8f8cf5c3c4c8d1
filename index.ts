/**
 * ci-registry-auth: delivers the zot CI API key from 1Password to one Forgejo
 * runner per stack and proves, by fingerprint, that the runner holds it.
 * This file only wires: config -> key -> one runner -> outputs.
 */
import { loadConfig } from "./components/config";
import { KubernetesRunner } from "./components/kubernetes-runner";
import { OnePasswordKey } from "./components/onepassword-key";
import { SshRunner } from "./components/ssh-runner";

const config = loadConfig();

const key = new OnePasswordKey("zot-ci-key", {
    connectUrl: config.connect.url,
    connectToken: config.connect.token,
    ...config.key,
});

const runner =
    config.runner.kind === "kubernetes"
        ? new KubernetesRunner("indri", {
              runner: config.runner,
              item: config.key.item,
              field: config.key.field,
              envVar: config.envVar,
              keyFingerprint: key.fingerprint,
          })
        : new SshRunner("ringtail", {
              runner: config.runner,
              envVar: config.envVar,
              key: key.value,
              keyFingerprint: key.fingerprint,
          });

export const runnerKind = config.runner.kind;
export const registryUser = config.registryUser;
export const envVar = config.envVar;
export const keyFingerprint = key.fingerprint;
export const keyExpiresAt = key.expiresAt;
export const keyDaysUntilExpiry = key.daysUntilExpiry;
export const hasKey = runner.hasKey;
export const delivered =
    runner instanceof KubernetesRunner
        ? {
              secretName: runner.secretName,
              secretFingerprint: runner.secretFingerprint,
              templateFingerprint: runner.templateFingerprint,
              envWired: runner.envWired,
              replicas: runner.replicas,
              readyReplicas: runner.readyReplicas,
              updatedReplicas: runner.updatedReplicas,
              rolledOut: runner.rolledOut,
          }
        : {
              changed: runner.changed,
              fileFingerprint: runner.fileFingerprint,
              fileOwner: runner.fileOwner,
              fileMode: runner.fileMode,
              unitActive: runner.unitActive,
              unitReadsFile: runner.unitReadsFile,
              processFingerprint: runner.processFingerprint,
          };
