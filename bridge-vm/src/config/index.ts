export { ConfigError, loadConfig, loadConfigOrExit, redactConfig } from "./load";
export { type BridgeConfig, configSchema, ENV_KEYS, SECRET_PATHS } from "./schema";
