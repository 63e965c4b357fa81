/**
 * The Patchbay Worker: HTTP routes (hono) the per-call Durable Object class (binding CALL)
 * and the registry of connected bridges (binding BRIDGE_REGISTRY).
 */
import { app } from "./http/app";

export { CallSession } from "./call/session";
export { BridgeRegistry } from "./control";

export default app;
