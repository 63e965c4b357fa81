export {
  cloudReachabilityProbe,
  type HealthSnapshot,
  isHealthy,
  type OpsServer,
  startOpsServer,
} from "./http";
export { BridgeMetrics, type EdgeRejections, type LiveCallStats, type RegistrationState } from "./metrics";
