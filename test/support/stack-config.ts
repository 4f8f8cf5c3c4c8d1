/** The committed stack settings, for tests (shared with the demo). */
import type { RawConfig, StackConfig } from "../../components/settings/config";
import { stackConfig as committedStackConfig } from "../../sandbox/committed-config";

export { committedRunner, rawConfig, TEST_HOST_KEY } from "../../sandbox/committed-config";

/**
 * A StackConfig as loadConfig returns it for the committed files, with the
 * registry probe pointed at a closed loopback port unless `overrides` name
 * one (unit tests never ask the real registry), and 1Password at the
 * harness's Connect emulator (useConnect).
 */
export function stackConfig(stack: "indri" | "ringtail", overrides: Partial<RawConfig> = {}): StackConfig {
    return committedStackConfig(stack, { registry: { url: "http://127.0.0.1:9" }, connectUrl: connectUrl(), ...overrides });
}

let harnessConnectUrl = "";
/** Points stackConfig's 1Password at the harness's Connect emulator. */
export function useConnect(url: string): void {
    harnessConnectUrl = url;
}
const connectUrl = (): string => harnessConnectUrl || "http://127.0.0.1:9";
