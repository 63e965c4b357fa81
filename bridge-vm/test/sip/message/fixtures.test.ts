/**
 * Runs every byte-exact fixture under test/fixtures/sip (written by the fixtures helper), driven by its
 * manifest.json when present (files missing from the manifest fall back to their folder's default):
 *   expect "parse" → parses, and serialize → parse gives the same headers and body;
 *   expect "400"   → refused with a coded error, with the request attached when the five headers a
 *                    response needs are present (so the transport can answer);
 *   expect "drop"  → refused with no request attached (nothing to answer).
 * A fixture whose expected behaviour we deliberately do not implement is listed below with the reason.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseSipMessage, serializeSipMessage } from "../../../src/sip/message";

const ROOT = join(import.meta.dirname, "../../fixtures/sip");

interface ManifestEntry {
  file: string;
  kind?: "request" | "response";
  expect: "parse" | "400" | "drop";
  response?: string | number;
}

/**
 * Fixtures we do not handle as the manifest says, skipped with the reason. None today: every RFC 4475
 * message is either handled as specified or, below, a documented choice the manifest allows.
 */
const DELIBERATE_DIFFERENCES: Record<string, string> = {};

/**
 * Valid syntax that our policy refuses (parseSipMessage without `syntaxOnly`, as the transports call it):
 * the message must parse with `syntaxOnly`, and the default parse must refuse it with this code and the
 * request attached, so the transport answers 400. Parse and policy are separate steps
 * (`requestPolicyError`); only the second one says no.
 */
const POLICY_REFUSALS: Record<string, { code: string; why: string }> = {
  "valid/inv2543.sip": {
    code: "bad-via",
    why: "RFC 2543 INVITE: its Via has no branch, and our transactions match on the branch (RFC 3261 §8.1.1.7)",
  },
  "valid/longreq.sip": {
    code: "bad-via",
    why: "its top 33 Vias carry no branch (only the last one does, and not a z9hG4bK one): same rule as inv2543",
  },
};

/**
 * Where the manifest's expectation leaves a choice and we take the other side, with the reason. The test
 * then asserts our behaviour instead of the manifest's.
 */
const OUR_CHOICE: Record<string, { expect: ManifestEntry["expect"]; why: string }> = {
  "invalid/baddate.sip": {
    expect: "parse",
    why:
      "RFC 4475 §3.1.2.12: rejecting a non-GMT Date is acceptable, but an element shouldn't unless Date matters " +
      "to its processing, and the bridge never reads Date; a 400 would only risk refusing a PBX whose clock " +
      "header is sloppy",
  },
};

const REQUIRED = ["Via", "From", "To", "Call-ID", "CSeq"];

function defaultExpectation(file: string): ManifestEntry["expect"] {
  return file.startsWith("invalid/") ? "400" : "parse";
}

function loadEntries(): ManifestEntry[] {
  const manifestPath = join(ROOT, "manifest.json");
  const entries: ManifestEntry[] = existsSync(manifestPath)
    ? (JSON.parse(readFileSync(manifestPath, "utf8")) as ManifestEntry[])
    : [];
  const known = new Set(entries.map((e) => e.file));
  for (const folder of ["valid", "invalid", "vendor"]) {
    let names: string[] = [];
    try {
      names = readdirSync(join(ROOT, folder), { recursive: true, encoding: "utf8" });
    } catch {
      // folder not there yet
    }
    for (const name of names.filter((n) => n.endsWith(".sip")).sort()) {
      const file = `${folder}/${name}`;
      if (!known.has(file)) entries.push({ file, expect: defaultExpectation(file) });
    }
  }
  return entries.filter((e) => existsSync(join(ROOT, e.file)));
}

const entries = loadEntries();

describe("fixtures/sip", () => {
  if (entries.length === 0) it.skip("no fixture files yet", () => {});

  for (const entry of entries) {
    const reason = DELIBERATE_DIFFERENCES[entry.file];
    const policy = POLICY_REFUSALS[entry.file];
    const choice = OUR_CHOICE[entry.file];
    const test = reason ? it.skip : it;
    const expectation = choice?.expect ?? entry.expect;
    const note = reason
      ? ` (skipped: ${reason})`
      : policy
        ? ` (refused by policy with ${policy.code}: ${policy.why})`
        : choice
          ? ` (our choice, manifest says ${entry.expect}: ${choice.why})`
          : "";
    const title = `${entry.file}: ${expectation}${note}`;

    test(title, () => {
      const bytes = readFileSync(join(ROOT, entry.file));
      if (policy) {
        const refused = parseSipMessage(bytes);
        expect(refused.ok ? "parsed" : refused.error.code).toBe(policy.code);
        expect(
          !refused.ok && refused.request,
          "the request must come back so a 400 can be sent",
        ).toBeTruthy();
      }
      const options = { syntaxOnly: policy !== undefined };
      const result = parseSipMessage(bytes, options);
      if (expectation === "parse") {
        if (!result.ok) throw new Error(`${result.error.code}: ${result.error.message}`);
        const again = parseSipMessage(serializeSipMessage(result.message), options);
        if (!again.ok) throw new Error(`re-parse: ${again.error.code}: ${again.error.message}`);
        // The serializer never writes NUL (a C peer could cut the line there; serialize.ts oneLine writes a
        // space), so RFC 4475 intmeth's escaped NUL comes back as an escaped space.
        const withoutLength = (m: typeof result.message) =>
          [...m.headers.entries()]
            .filter(([name]) => name !== "Content-Length")
            .map(([name, value]) => [name, value.replaceAll("\0", " ")]);
        expect(withoutLength(again.message)).toEqual(withoutLength(result.message));
        expect(again.message.body).toEqual(result.message.body);
        return;
      }
      if (result.ok) throw new Error("expected a coded error, got a message");
      expect(result.error.message).toMatch(/^[\x20-\x7e]{1,100}$/);
      if (expectation === "drop") {
        expect(result.request).toBeUndefined();
        return;
      }
      const text = new TextDecoder().decode(bytes);
      const hasResponseHeaders = REQUIRED.every((name) =>
        new RegExp(
          `^(${name}|${{ Via: "v", From: "f", To: "t", "Call-ID": "i" }[name] ?? name})[ \\t]*:`,
          "im",
        ).test(text),
      );
      if (hasResponseHeaders)
        expect(result.request, `${result.error.code} should carry the request`).toBeDefined();
    });
  }
});
