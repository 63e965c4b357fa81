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

/** Fixtures we handle differently on purpose, keyed by path relative to fixtures/sip. */
const DELIBERATE_DIFFERENCES: Record<string, string> = {
  "valid/intmeth.sip":
    "valid per RFC 4475, but its To display name carries raw BEL/NUL/DEL as quoted-pairs; we reject every CTL in headers on purpose (dropped, not answered)",
  "valid/inv2543.sip":
    "RFC 2543 request without a Via branch: refused as bad-via (the transport answers 400, as the manifest's response says) instead of parsed",
  "valid/longreq.sip":
    "34 Via headers exceed SIP_LIMITS.maxViaHeaders (16), a deliberate cap against header floods",
  "valid/unksm2.sip":
    "From/To with isbn:/http: URIs: name-addr accepts only sip/sips/tel, so we refuse with 400 where RFC 4475 expects 416",
  "invalid/baddate.sip": "Date header semantics (must be GMT) are not checked; the bridge never reads Date",
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
    const test = reason ? it.skip : it;
    const title = `${entry.file}: ${entry.expect}${reason ? ` (skipped: ${reason})` : ""}`;

    test(title, () => {
      const bytes = readFileSync(join(ROOT, entry.file));
      const result = parseSipMessage(bytes);
      if (entry.expect === "parse") {
        if (!result.ok) throw new Error(`${result.error.code}: ${result.error.message}`);
        const again = parseSipMessage(serializeSipMessage(result.message));
        if (!again.ok) throw new Error(`re-parse: ${again.error.code}: ${again.error.message}`);
        const withoutLength = (m: typeof result.message) =>
          [...m.headers.entries()].filter(([name]) => name !== "Content-Length");
        expect(withoutLength(again.message)).toEqual(withoutLength(result.message));
        expect(again.message.body).toEqual(result.message.body);
        return;
      }
      if (result.ok) throw new Error("expected a coded error, got a message");
      expect(result.error.message).toMatch(/^[\x20-\x7e]{1,100}$/);
      if (entry.expect === "drop") {
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
