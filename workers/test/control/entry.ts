/**
 * Test-only Worker entry: the control plane alone (BridgeRegistry + controlRoutes), so the control
 * tests do not depend on how the integrator wires them into workers/src/index.ts and wrangler.toml.
 */
import { Hono } from "hono";
import { type ControlEnv, controlRoutes } from "../../src/control";

export { BridgeRegistry } from "../../src/control";

const app = new Hono<{ Bindings: ControlEnv }>();
app.route("/", controlRoutes);
export default app;
