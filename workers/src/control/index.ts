export {
  BridgeRegistry,
  type BridgeSummary,
  type CallProgress,
  type ControlEnv,
  INTERNAL_BRIDGE_ID_HEADER,
  type OriginateOutcome,
  REGISTRY_NAME,
} from "./registry";
export { controlRoutes } from "./routes";
export { type BridgeView, chooseBridge, freeCapacity, isLive } from "./selection";
