/**
 * Top-N self time of a V8 CPU profile (the .cpuprofile format of `node --cpu-prof` and of the
 * inspector's Profiler.stop). Usable as a module (bench/media.ts) or on a file:
 *   tsx bench/profile-summary.ts some.cpuprofile [top]
 */
import { readFileSync } from "node:fs";

export interface CpuProfile {
  nodes: {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
    hitCount?: number;
  }[];
  samples?: number[];
  timeDeltas?: number[];
  startTime: number;
  endTime: number;
}

export interface SelfTimeRow {
  name: string;
  where: string;
  selfMs: number;
  percent: number;
}

export function summarizeProfile(profile: CpuProfile, top = 10): SelfTimeRow[] {
  const byNode = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  for (let i = 0; i < samples.length; i++) {
    const id = samples[i]!;
    byNode.set(id, (byNode.get(id) ?? 0) + (deltas[i] ?? 0));
  }
  const byFunction = new Map<string, SelfTimeRow>();
  let total = 0;
  for (const node of profile.nodes) {
    const micros = byNode.get(node.id) ?? 0;
    total += micros;
    const { functionName, url, lineNumber } = node.callFrame;
    const name = functionName || "(anonymous)";
    const file = url.replace(/^file:\/\//, "").replace(/.*\/(bridge-vm|node_modules)\//, "$1/");
    const where = file ? `${file}:${lineNumber + 1}` : "";
    const key = `${name}@${where}`;
    const row = byFunction.get(key) ?? { name, where, selfMs: 0, percent: 0 };
    row.selfMs += micros / 1000;
    byFunction.set(key, row);
  }
  // Percentages are of busy time: "(idle)" is the process waiting for I/O, not work.
  const idle = [...byFunction.values()].find((row) => row.name === "(idle)")?.selfMs ?? 0;
  const busy = total - idle * 1000;
  const rows = [...byFunction.values()]
    .filter((row) => row.name !== "(idle)")
    .sort((a, b) => b.selfMs - a.selfMs)
    .slice(0, top);
  for (const row of rows) row.percent = busy <= 0 ? 0 : (row.selfMs * 1000 * 100) / busy;
  return rows;
}

export function formatSummary(rows: SelfTimeRow[]): string {
  return [`${"busy%".padStart(7)}  ${"self".padStart(9)}  function  location`]
    .concat(
      rows.map(
        (row) =>
          `${row.percent.toFixed(1).padStart(5)} %  ${row.selfMs.toFixed(0).padStart(6)} ms  ${row.name}  ${row.where}`,
      ),
    )
    .join("\n");
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [path, top] = process.argv.slice(2);
  if (!path) {
    console.error("usage: tsx bench/profile-summary.ts <file.cpuprofile> [top]");
    process.exit(2);
  }
  const profile = JSON.parse(readFileSync(path, "utf8")) as CpuProfile;
  console.log(formatSummary(summarizeProfile(profile, Number(top ?? 10))));
}
