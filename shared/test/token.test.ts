import { describe, expect, it } from "vitest";
import { signCallToken, verifyCallToken } from "../src/token";

const SECRET = "a-test-secret-of-enough-length";

describe("call tokens", () => {
  it("verify for the call they were signed for", async () => {
    const token = await signCallToken(SECRET, "call_12345678");
    expect(await verifyCallToken(SECRET, "call_12345678", token)).toMatchObject({ ok: true });
  });

  it("do not open another call, or verify under another secret", async () => {
    const token = await signCallToken(SECRET, "call_12345678");
    expect(await verifyCallToken(SECRET, "call_87654321", token)).toEqual({
      ok: false,
      reason: "bad-signature",
    });
    expect(await verifyCallToken(`${SECRET}-other`, "call_12345678", token)).toEqual({
      ok: false,
      reason: "bad-signature",
    });
  });

  it("expire", async () => {
    const token = await signCallToken(SECRET, "call_12345678", { ttlSeconds: 60, nowMs: 1_000_000 });
    expect(
      await verifyCallToken(SECRET, "call_12345678", token, { nowMs: 1_000_000 + 59_000 }),
    ).toMatchObject({
      ok: true,
    });
    expect(await verifyCallToken(SECRET, "call_12345678", token, { nowMs: 1_000_000 + 61_000 })).toEqual({
      ok: false,
      reason: "expired",
    });
  });

  it("reject tampering and garbage without throwing", async () => {
    const token = await signCallToken(SECRET, "call_12345678");
    const [version, expiry, signature] = token.split(".");
    const later = `${version}.${Number(expiry) + 3600}.${signature}`;
    expect(await verifyCallToken(SECRET, "call_12345678", later)).toEqual({
      ok: false,
      reason: "bad-signature",
    });
    for (const garbage of [
      "",
      "v1",
      "v1..",
      "v2.1.abc",
      "v1.x.abc",
      `v1.${expiry}.***`,
      `v1.${expiry}.AAAA`,
    ]) {
      expect(await verifyCallToken(SECRET, "call_12345678", garbage)).toEqual({
        ok: false,
        reason: "malformed",
      });
    }
  });

  it("refuse a weak secret", async () => {
    await expect(signCallToken("short", "call_12345678")).rejects.toThrow(/at least 16/);
  });
});
