/**
 * ci-registry-auth: delivers the zot CI API key from 1Password to one Forgejo
 * runner per stack and proves, by fingerprint, that the runner holds it and
 * that the registry accepts it. This file only wires: config -> stack ->
 * exports, by the one list of output names (components/outputs.ts). The program is async because the key is
 * read and checked before any resource uses it.
 */
// First: how the SDK's unused modules load (function serialization, the Automation API: components/sdk-load.ts),
// then who maps stack traces (components/stack-traces.ts); both before any component loads.
import "./components/sdk-load";
import "./components/stack-traces";
import { loadConfig } from "./components/settings/config";
import { exportedOutputs } from "./components/outputs";
import { defineStack } from "./components/stack";

export = async () => exportedOutputs(await defineStack(loadConfig()));
