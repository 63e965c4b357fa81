/**
 * The Worker's HTTP surface (hono): the bridge's media socket upgrade, the call report API, health.
 *
 *   GET /healthz                 → 200 {ok:true}
 *   GET /v1/media/:callId        → 101, after the call token is verified (401 JSON before any upgrade)
 *   GET /v1/calls/:callId        → the call report (status, transcript, per-turn timings) and, for an
 *                                  outbound call, `outbound` (its progress from the registry); API token
 *   POST /v1/calls, GET /v1/calls/:callId/progress, GET /v1/bridges, GET /v1/bridges/:id/control
 *                                → outbound calls and the bridges' control sockets (../control/routes.ts)
 *
 * Authentication happens here, in the stateless Worker, so a bad token never wakes a Durable Object.
 */
import { verifyCallToken } from "@patchbay/shared/token";
import { Hono } from "hono";
import { INTERNAL_CALL_ID_HEADER } from "../call/session";
import { controlRoutes, REGISTRY_NAME } from "../control";
import { apiAuthorized, bearer } from "./auth";

const CALL_ID = /^[A-Za-z0-9_-]{8,64}$/;

export const app = new Hono<{ Bindings: Env }>();

app.get("/healthz", (c) => c.json({ ok: true }));

app.get("/v1/media/:callId", async (c) => {
  const callId = c.req.param("callId");
  if (!CALL_ID.test(callId)) return c.json({ error: "bad-request", message: "malformed call id" }, 400);
  if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
    return c.json({ error: "upgrade-required", message: "this endpoint is a WebSocket" }, 426);
  }
  const token = bearer(c.req.header("authorization")) ?? c.req.query("token");
  if (!token) return c.json({ error: "unauthorized", reason: "missing" }, 401);
  if (!c.env.BRIDGE_SECRET) return c.json({ error: "unavailable", message: "BRIDGE_SECRET is not set" }, 503);
  const check = await verifyCallToken(c.env.BRIDGE_SECRET, callId, token);
  if (!check.ok) return c.json({ error: "unauthorized", reason: check.reason }, 401);

  const stub = c.env.CALL.get(c.env.CALL.idFromName(callId));
  const headers = new Headers(c.req.raw.headers);
  headers.set(INTERNAL_CALL_ID_HEADER, callId);
  headers.delete("authorization");
  return stub.fetch(new Request(`https://call.internal/media/${callId}`, { headers }));
});

app.get("/v1/calls/:callId", async (c) => {
  if (!(await apiAuthorized(c.req.header("authorization"), c.env.API_TOKEN))) {
    return c.json({ error: "unauthorized" }, 401);
  }
  const callId = c.req.param("callId");
  if (!CALL_ID.test(callId)) return c.json({ error: "bad-request", message: "malformed call id" }, 400);
  const stub = c.env.CALL.get(c.env.CALL.idFromName(callId));
  // An outbound call is also in the registry's table: its progress joins the report as `outbound`
  // (queued → ringing → answered → completed with the SIP cause, or failed with the reason), and it
  // is the whole answer while the call has no conversation yet (queued, ringing, never answered).
  const [report, outbound] = await Promise.all([
    stub.fetch("https://call.internal/internal/report"),
    c.env.BRIDGE_REGISTRY
      ? c.env.BRIDGE_REGISTRY.get(c.env.BRIDGE_REGISTRY.idFromName(REGISTRY_NAME)).progress(callId)
      : Promise.resolve(undefined),
  ]);
  if (!outbound) return report;
  if (report.status === 404) return c.json({ callId, outbound });
  if (!report.ok) return report;
  return c.json({ ...((await report.json()) as Record<string, unknown>), outbound });
});

app.route("/", controlRoutes);

app.notFound((c) => c.json({ error: "not-found" }, 404));
app.onError((error, c) => {
  console.error(JSON.stringify({ level: "error", msg: "request failed", error: error.message }));
  return c.json({ error: "internal" }, 500);
});
