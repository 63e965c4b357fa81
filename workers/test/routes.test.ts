import { SELF } from "cloudflare:test";
import { signCallToken } from "@patchbay/shared";
import { describe, expect, it } from "vitest";
import { BRIDGE_SECRET, newCallId, openMedia, TestBridge } from "./helpers/bridge";

const API_TOKEN = "test-api-token-0123456789";

describe("GET /healthz", () => {
  it("answers without authentication", async () => {
    const response = await SELF.fetch("http://worker/healthz");
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ ok: true });
  });
});

describe("GET /v1/media/:callId (the bridge's media socket)", () => {
  it("upgrades (101) with a valid call token in the Authorization header", async () => {
    const response = await openMedia(newCallId());
    expect(response.status).toBe(101);
    response.webSocket?.accept();
    response.webSocket?.close(1000);
  });

  it("accepts the token in ?token= for clients that cannot set headers", async () => {
    const response = await openMedia(newCallId(), { query: true });
    expect(response.status).toBe(101);
    response.webSocket?.accept();
    response.webSocket?.close(1000);
  });

  it.each([
    ["missing", async () => undefined, "missing"],
    ["malformed", async () => "not-a-token", "malformed"],
    ["for another call", async () => signCallToken(BRIDGE_SECRET, "some-other-call"), "bad-signature"],
    [
      "signed with another secret",
      async (id: string) => signCallToken("another-secret-0123456789", id),
      "bad-signature",
    ],
    [
      "expired",
      async (id: string) =>
        signCallToken(BRIDGE_SECRET, id, { ttlSeconds: 60, nowMs: Date.now() - 3_600_000 }),
      "expired",
    ],
  ])("rejects a %s token with 401 JSON before upgrading", async (_name, makeToken, reason) => {
    const callId = newCallId();
    const token = await makeToken(callId);
    const headers: Record<string, string> = { Upgrade: "websocket" };
    if (token) headers.Authorization = `Bearer ${token}`;
    const response = await SELF.fetch(`http://worker/v1/media/${callId}`, { headers });
    expect(response.status).toBe(401);
    expect(response.webSocket).toBeNull();
    expect(await response.json()).toEqual({ error: "unauthorized", reason });
  });

  it("rejects a plain GET with 426 and a malformed call id with 400", async () => {
    const callId = newCallId();
    const token = await signCallToken(BRIDGE_SECRET, callId);
    const plain = await SELF.fetch(`http://worker/v1/media/${callId}`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    expect(plain.status).toBe(426);
    const bad = await SELF.fetch("http://worker/v1/media/x!", { headers: { Upgrade: "websocket" } });
    expect(bad.status).toBe(400);
  });
});

describe("GET /v1/calls/:callId", () => {
  it("requires the API token", async () => {
    const callId = newCallId();
    for (const authorization of [
      undefined,
      "Bearer wrong-token",
      `Basic ${API_TOKEN}`,
      `Bearer ${API_TOKEN}x`,
    ]) {
      const headers: Record<string, string> = authorization ? { Authorization: authorization } : {};
      const response = await SELF.fetch(`http://worker/v1/calls/${callId}`, { headers });
      expect(response.status, String(authorization)).toBe(401);
    }
  });

  it("404s an unknown call and reports a live one", async () => {
    const headers = { Authorization: `Bearer ${API_TOKEN}` };
    const unknown = await SELF.fetch(`http://worker/v1/calls/${newCallId()}`, { headers });
    expect(unknown.status).toBe(404);

    const callId = newCallId();
    const { bridge } = await TestBridge.start(callId, { call: { agent: "test-silent" } });
    const response = await SELF.fetch(`http://worker/v1/calls/${callId}`, { headers });
    expect(response.status).toBe(200);
    const report = (await response.json()) as { status: string; agent: string; callId: string };
    expect(report).toMatchObject({ callId, status: "active", agent: "test-silent" });
    bridge.close();
  });

  it("404s unknown paths with JSON", async () => {
    const response = await SELF.fetch("http://worker/nope");
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({ error: "not-found" });
  });
});
