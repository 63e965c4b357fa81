import fc from "fast-check";
import { describe, it } from "vitest";
import { buildAuthorization, parseChallenge } from "../../../src/sip/auth";

describe("digest robustness (property)", () => {
  it("parseChallenge never throws", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 200 }),
          fc.string({ maxLength: 100 }).map((s) => `Digest ${s}`),
          fc
            .array(
              fc.tuple(
                fc.constantFrom("realm", "nonce", "qop", "algorithm", "stale"),
                fc.string({ maxLength: 10 }),
              ),
            )
            .map((pairs) => `Digest ${pairs.map(([k, v]) => `${k}="${v}"`).join(", ")}`),
        ),
        (value) => {
          parseChallenge(value);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("a parsed challenge always yields an Authorization value without the password", () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1, maxLength: 20 }),
        fc.string({ minLength: 8, maxLength: 20 }),
        (nonce, password) => {
          const challenge = parseChallenge(
            `Digest realm="r", nonce="${nonce.replace(/["\\]/g, "")}x", qop="auth"`,
          );
          if (!challenge) throw new Error("challenge should parse");
          const value = buildAuthorization({
            challenge,
            method: "REGISTER",
            uri: "sip:h",
            username: "u",
            password: `pw-${password}`,
            nc: 1,
          });
          if (value.includes(`pw-${password}`)) throw new Error("password leaked");
        },
      ),
      { numRuns: 300 },
    );
  });
});
