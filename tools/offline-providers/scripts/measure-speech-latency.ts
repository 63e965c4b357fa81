/**
 * Time to first byte and total time of /v1/audio/speech per format, for a short and a long input,
 * against a freshly started server on loopback. Median of 5 runs each.
 *
 *   pnpm --filter @patchbay/offline-providers exec tsx scripts/measure-speech-latency.ts
 */
import { startOfflineProviders } from "../src/index";

const INPUTS = {
  short: "We are open nine to five, Monday to Friday.",
  long: Array.from(
    { length: 6 },
    () => "We are open nine to five, Monday to Friday, and on Saturday mornings.",
  ).join(" "),
};
const FORMATS = ["mulaw", "pcm", "wav"];
const RUNS = 5;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

const providers = await startOfflineProviders();
try {
  console.log("| input | format | audio s | TTFB ms (median) | total ms (median) | body chunks |");
  console.log("|---|---|---|---|---|---|");
  for (const [name, input] of Object.entries(INPUTS)) {
    for (const format of FORMATS) {
      const firstByte: number[] = [];
      const total: number[] = [];
      let seconds = 0;
      let chunks = 0;
      for (let run = 0; run < RUNS; run++) {
        const started = performance.now();
        const response = await fetch(`${providers.url}/v1/audio/speech`, {
          method: "POST",
          headers: { authorization: "Bearer local", "content-type": "application/json" },
          body: JSON.stringify({ model: "tts-1", voice: "alloy", input, response_format: format }),
        });
        const reader = response.body!.getReader();
        let bytes = 0;
        chunks = 0;
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          if (chunks === 0) firstByte.push(performance.now() - started);
          chunks++;
          bytes += value.length;
        }
        total.push(performance.now() - started);
        seconds = format === "mulaw" ? bytes / 8000 : (bytes - (format === "wav" ? 44 : 0)) / 48000;
      }
      console.log(
        `| ${name} | ${format} | ${seconds.toFixed(1)} | ${median(firstByte).toFixed(0)} | ${median(total).toFixed(0)} | ${chunks} |`,
      );
    }
  }
} finally {
  await providers.close();
}
