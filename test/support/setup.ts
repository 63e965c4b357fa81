/** Loaded by vitest before every test file: whatever a file forgot to stop is stopped after it. */
import { afterAll } from "vitest";
import { stopAllPeers } from "./process";

afterAll(async () => {
  await stopAllPeers();
});
