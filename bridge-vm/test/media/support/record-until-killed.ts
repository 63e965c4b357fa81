/**
 * Child process for the crash-safety test: records a 440 Hz tone on the caller channel and an
 * 880 Hz tone on the agent channel in real time, says "ready" after `readyAfterMs`, and keeps
 * recording until the parent SIGKILLs it (no close, no header finalization).
 */
import { performance } from "node:perf_hooks";
import { WavRecorder } from "../../../src/media/recording/wav-recorder";

const [path, readyAfterArg] = process.argv.slice(2);
if (!path) throw new Error("usage: record-until-killed <path> [readyAfterMs]");
const readyAfterMs = Number(readyAfterArg ?? 1500);

const recorder = await WavRecorder.create(path, { headerPatchIntervalMs: 500 });
const start = performance.now();
let frame = 0;
let announced = false;
setInterval(() => {
  const now = performance.now();
  while ((frame + 1) * 20 <= now - start) {
    const caller = new Int16Array(160);
    const agent = new Int16Array(160);
    for (let i = 0; i < 160; i++) {
      const n = frame * 160 + i;
      caller[i] = Math.round(8000 * Math.sin((2 * Math.PI * 440 * n) / 8000));
      agent[i] = Math.round(8000 * Math.sin((2 * Math.PI * 880 * n) / 8000));
    }
    recorder.write(0, caller, frame * 160);
    recorder.write(1, agent, frame * 160);
    frame++;
  }
  recorder.advance(Math.round((now - start) * 8), now);
  if (!announced && now - start >= readyAfterMs) {
    announced = true;
    process.stdout.write("ready\n");
  }
}, 10);
