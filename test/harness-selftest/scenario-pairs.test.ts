/**
 * Each scenario in test/peers/sipp played against a SIPp counterpart (harness-selftest/scenarios), so a
 * scenario bug shows up here and not as a mysterious bridge failure: the expectations inside the scenarios
 * (recvonly in the hold answer, Require: timer, 422 + Min-SE, stale=true, verifyauth, 423) are exercised.
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { stopAllPeers } from "../support/process";
import { describeSippResult, runSipp, startSippServer } from "../support/sipp";

const COUNTERPARTS = join(dirname(fileURLToPath(import.meta.url)), "scenarios");
const counterpart = (name: string) => join(COUNTERPARTS, `${name}.xml`);

interface Pair {
  uac: string;
  uas: string;
  keys?: Record<string, string>;
  templateVars?: Record<string, string>;
  auth?: boolean;
}

const CREDENTIALS = { user: "alice", password: "s3cret" };
const pairs: Pair[] = [
  { uac: "uac-hold-resume", uas: counterpart("uas-hold-mirror") },
  { uac: "uac-session-timer", uas: counterpart("uas-session-timer") },
  {
    uac: "uac-session-timer-422",
    uas: counterpart("uas-reject"),
    templateVars: { STATUS: "422", REASON: "Session Interval Too Small", EXTRA: "Min-SE: 90" },
  },
  {
    uac: "uac-no-codec",
    uas: counterpart("uas-reject"),
    templateVars: {
      STATUS: "488",
      REASON: "Not Acceptable Here",
      EXTRA: 'Warning: 304 peer "Incompatible media format"',
    },
  },
  { uac: "uac-options", uas: counterpart("uas-options") },
  { uac: "uac-wait-bye", uas: counterpart("uas-hangup") },
  { uac: counterpart("uac-invite-auth"), uas: "uas-challenge-401", keys: CREDENTIALS, auth: true },
  {
    uac: counterpart("uac-register-refresh"),
    uas: "reg-stale",
    keys: { ...CREDENTIALS, expires: "4" },
    auth: true,
  },
  { uac: counterpart("uac-register-423"), uas: "reg-423", keys: { min_expires: "120", expires: "120" } },
  { uac: "uac-record", uas: "uas-answer", keys: { rtp_port: "20000" } },
];

describe.concurrent("scenario pairs", () => {
  afterAll(async () => {
    await stopAllPeers();
  });

  it.each(pairs)("$uac against $uas", async ({ uac, uas, keys, templateVars, auth }) => {
    const server = await startSippServer({
      scenario: uas,
      calls: 1,
      keys: keys ?? {},
      templateVars: templateVars ?? {},
    });
    const client = await runSipp({
      scenario: uac,
      remote: server.address,
      keys: keys ?? {},
      pauseMs: 100,
      timeoutMs: 15_000,
      ...(auth === true ? { auth: { username: CREDENTIALS.user, password: CREDENTIALS.password } } : {}),
    });
    expect(client.exitCode, describeSippResult(client)).toBe(0);
    const served = await server.finished(15_000);
    expect(served.exitCode, describeSippResult(served)).toBe(0);
  });
});
