/**
 * The provider layer's public face for the rest of the Worker: the interfaces (types.ts), the registry
 * that builds an agent's providers, and the registration of the vendor implementations.
 */
export type * from "./realtime-types";
export * from "./registry";
export * from "./secrets";
export * from "./types";
export { registerVendorProviders } from "./vendors";
