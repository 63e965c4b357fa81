/**
 * The Patchbay Worker: HTTP routes (hono) and the per-call Durable Object class (binding CALL).
 */
import { app } from "./http/app";

export { CallSession } from "./call/session";

export default app;
