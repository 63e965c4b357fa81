/**
 * The control plane's HTTP surface (a hono sub-app; the integrator mounts it with `app.route("/", controlRoutes)`):
 *
 *   GET  /v1/bridges/:bridgeId/control  → 101; bridge auth: Bearer signCallToken(BRIDGE_SECRET, "bridge-" + id)
 *   GET  /v1/bridges                    → connected bridges, capacity, health (API token)
 *   POST /v1/calls                      → 202 {callId, status:"queued"}; Idempotency-Key required (API token)
 *   GET  /v1/calls/:callId/progress     → queued | ringing | answered | completed | failed (API token)
 *
 * Every check happens here, in the stateless Worker, so bad requests never wake the registry.
 */
import { bridgeIdSchema, controlTokenSubject, originateRequest } from "@patchbay/shared/protocol";
import { verifyCallToken } from "@patchbay/shared/token";
import { Hono } from "hono";
import { apiAuthorized, bearer } from "../http/auth";
import { type ControlEnv, INTERNAL_BRIDGE_ID_HEADER, REGISTRY_NAME } from "./registry";

const CALL_ID = /^[A-Za-z0-9_-]{8,64}$/;
/** Printable ASCII, as Stripe and the IETF Idempotency-Key draft use it. */
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;
const MAX_BODY_BYTES = 32_768;

export const controlRoutes = new Hono<{ Bindings: ControlEnv }>();

function registry(env: ControlEnv) {
  return env.BRIDGE_REGISTRY.get(env.BRIDGE_REGISTRY.idFromName(REGISTRY_NAME));
}

controlRoutes.get("/v1/bridges/:bridgeId/control", async (c) => {
  const bridgeId = c.req.param("bridgeId");
  if (!bridgeIdSchema.safeParse(bridgeId).success) {
    return c.json({ error: "bad-request", message: "malformed bridge id" }, 400);
  }
  if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
    return c.json({ error: "upgrade-required", message: "this endpoint is a WebSocket" }, 426);
  }
  const token = bearer(c.req.header("authorization"));
  if (!token) return c.json({ error: "unauthorized", reason: "missing" }, 401);
  if (!c.env.BRIDGE_SECRET) return c.json({ error: "unavailable", message: "BRIDGE_SECRET is not set" }, 503);
  const check = await verifyCallToken(c.env.BRIDGE_SECRET, controlTokenSubject(bridgeId), token);
  if (!check.ok) return c.json({ error: "unauthorized", reason: check.reason }, 401);
  const headers = new Headers(c.req.raw.headers);
  headers.delete("authorization");
  headers.set(INTERNAL_BRIDGE_ID_HEADER, bridgeId);
  return registry(c.env).fetch(new Request(`https://registry.internal/control/${bridgeId}`, { headers }));
});

controlRoutes.get("/v1/bridges", async (c) => {
  if (!(await apiAuthorized(c.req.header("authorization"), c.env.API_TOKEN))) {
    return c.json({ error: "unauthorized" }, 401);
  }
  return c.json({ bridges: await registry(c.env).bridges() });
});

controlRoutes.post("/v1/calls", async (c) => {
  if (!(await apiAuthorized(c.req.header("authorization"), c.env.API_TOKEN))) {
    return c.json({ error: "unauthorized" }, 401);
  }
  const key = c.req.header("idempotency-key");
  if (!key || !IDEMPOTENCY_KEY.test(key)) {
    return c.json(
      { error: "bad-request", message: "Idempotency-Key header required (1-255 printable ASCII)" },
      400,
    );
  }
  const text = await c.req.text();
  if (text.length > MAX_BODY_BYTES) return c.json({ error: "payload-too-large" }, 413);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return c.json({ error: "bad-request", message: "body is not JSON" }, 400);
  }
  const parsed = originateRequest.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return c.json(
      { error: "bad-request", message: `${issue?.path.join(".") || "body"}: ${issue?.message ?? "invalid"}` },
      400,
    );
  }
  const outcome = await registry(c.env).originate(key, parsed.data);
  if (!outcome.ok) {
    return c.json(
      { error: outcome.error, message: "this Idempotency-Key was used with a different request" },
      409,
    );
  }
  // A replay answers like the first request did: same call id; the status is where the call is now.
  return c.json({ callId: outcome.callId, status: outcome.status }, 202);
});

controlRoutes.get("/v1/calls/:callId/progress", async (c) => {
  if (!(await apiAuthorized(c.req.header("authorization"), c.env.API_TOKEN))) {
    return c.json({ error: "unauthorized" }, 401);
  }
  const callId = c.req.param("callId");
  if (!CALL_ID.test(callId)) return c.json({ error: "bad-request", message: "malformed call id" }, 400);
  const progress = await registry(c.env).progress(callId);
  return progress ? c.json(progress) : c.json({ error: "not-found" }, 404);
});
