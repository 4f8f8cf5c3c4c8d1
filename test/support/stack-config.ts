/** The committed stack settings, for tests (shared with the demo). */
export { committedRunner, projectDefaults, rawConfig, stackConfig, TEST_HOST_KEY } from "../../sandbox/committed-config";
