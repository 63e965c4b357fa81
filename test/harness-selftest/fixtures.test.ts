/**
 * The SIP fixture set is consistent: the manifest lists every .sip file exactly once (and nothing else),
 * every header section is CRLF-only (a re-saved file with LF endings would silently weaken the parser tests),
 * and Content-Length matches the body wherever the manifest says the message is valid.
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), "../../bridge-vm/test/fixtures/sip");

interface ManifestEntry {
  file: string;
  kind: "request" | "response";
  valid: boolean;
  expect: "parse" | "400" | "drop";
  response?: number;
  source: string;
  note?: string;
}

const manifest = JSON.parse(readFileSync(join(FIXTURES, "manifest.json"), "utf8")) as ManifestEntry[];

function sipFilesOnDisk(): string[] {
  return ["valid", "invalid", "vendor"].flatMap((folder) =>
    readdirSync(join(FIXTURES, folder))
      .filter((name) => name.endsWith(".sip"))
      .map((name) => `${folder}/${name}`),
  );
}

function splitMessage(bytes: Buffer): { head: string; body: Buffer } {
  const end = bytes.indexOf("\r\n\r\n");
  expect(end, "message has a CRLFCRLF header terminator").toBeGreaterThan(0);
  return { head: bytes.subarray(0, end).toString("latin1"), body: bytes.subarray(end + 4) };
}

describe("SIP fixtures", () => {
  it("manifest lists every .sip file exactly once", () => {
    const listed = manifest.map((entry) => entry.file).sort();
    expect(new Set(listed).size).toBe(listed.length);
    expect(listed).toEqual(sipFilesOnDisk().sort());
  });

  it("has every RFC 4475 §3.1.1 and §3.1.2 message", () => {
    const sections = manifest.map((entry) => entry.source);
    for (let i = 1; i <= 13; i++) expect(sections).toContain(`RFC 4475 §3.1.1.${i}`);
    for (let i = 1; i <= 19; i++) expect(sections).toContain(`RFC 4475 §3.1.2.${i}`);
  });

  it.each(manifest)("$file: folder, CRLF-only headers, start line", (entry) => {
    const bytes = readFileSync(join(FIXTURES, entry.file));
    expect(entry.file.startsWith("invalid/")).toBe(!entry.valid);
    const { head } = splitMessage(bytes);
    expect(head.replaceAll("\r\n", "").includes("\n"), "bare LF in header section").toBe(false);
    const startLine = head.slice(0, head.indexOf("\r\n"));
    expect(startLine.startsWith("SIP/")).toBe(entry.kind === "response");
  });

  it.each(manifest.filter((entry) => entry.valid))("$file: Content-Length matches the body", (entry) => {
    const { head, body } = splitMessage(readFileSync(join(FIXTURES, entry.file)));
    const match = /^(?:content-length|l)[ \t]*:[ \t]*(\d+)/im.exec(head);
    if (match === null) return; // RFC 2543-style inv2543 has none: the datagram's end frames it.
    const declared = Number(match[1]);
    // dblreq: the datagram carries trailing noise after the (empty) body; the declared length wins.
    if (entry.file.endsWith("dblreq.sip")) expect(declared).toBe(0);
    else expect(body.length).toBe(declared);
  });
});
