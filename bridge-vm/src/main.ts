/**
 * Entry point of the bridge process (`node dist/patchbay-bridge.mjs`, or tsx in development).
 * Everything lives in cli.ts: `patchbay [run|doctor]`. Bad config exits 2 with one line naming the key.
 */
import { main } from "./cli";

await main();
