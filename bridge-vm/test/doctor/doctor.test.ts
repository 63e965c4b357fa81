import { createSocket } from "node:dgram";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runDoctor } from "../../src/doctor/index";
import { FakeWorker } from "../cloud/fake-worker";

const baseEnv = {
  SIP_REGISTRAR: "127.0.0.1:9", // discard port: nothing answers SIP there
  SIP_USERNAME: "2001",
  SIP_PASSWORD: "not-a-real-password",
  RTP_PORT_MIN: "41000",
  RTP_PORT_MAX: "41100",
  HTTP_PORT: "0",
};

describe("patchbay doctor", () => {
  const worker = new FakeWorker();
  let workerUrl: string;
  beforeAll(async () => {
    workerUrl = await worker.start();
  });
  afterAll(async () => {
    await worker.stop();
  });

  it("fails on bad config with the key named, and runs nothing else", async () => {
    let output = "";
    const report = await runDoctor({ SIP_USERNAME: "2001" }, { write: (text) => (output += text) });
    expect(report.ok).toBe(false);
    expect(report.results).toHaveLength(1);
    expect(output).toMatch(/config\s+FAIL\s+SIP_REGISTRAR/);
    expect(output).toContain("hint:");
  });

  it("passes the Worker check with the right secret and explains the wrong one", async () => {
    let output = "";
    const good = await runDoctor(
      { ...baseEnv, CLOUD_URL: workerUrl, CLOUD_SECRET: worker.secret },
      { write: (text) => (output += text) },
    );
    expect(good.results.find((result) => result.name === "worker")).toMatchObject({ ok: true });
    await expect.poll(() => worker.controlsOfType("hangup").length).toBeGreaterThan(0); // the test call was hung up
    expect(good.results.find((result) => result.name === "registrar")).toMatchObject({ ok: false });
    expect(good.ok).toBe(false);
    expect(output).not.toContain(worker.secret);

    const bad = await runDoctor(
      { ...baseEnv, CLOUD_URL: workerUrl, CLOUD_SECRET: "a-different-secret-value" },
      { write: () => {} },
    );
    expect(bad.results.find((result) => result.name === "worker")).toMatchObject({
      ok: false,
      hint: expect.stringMatching(/BRIDGE_SECRET/),
    });
  });

  it("reports an RTP range it cannot bind", async () => {
    const squatter = createSocket("udp4");
    await new Promise<void>((resolve) => squatter.bind(41000, "0.0.0.0", resolve));
    try {
      const report = await runDoctor(baseEnv, { write: () => {} });
      expect(report.results.find((result) => result.name === "rtp-ports")).toMatchObject({
        ok: false,
        detail: expect.stringContaining("41000: EADDRINUSE"),
      });
    } finally {
      squatter.close();
    }
    const clear = await runDoctor(baseEnv, { write: () => {} });
    expect(clear.results.find((result) => result.name === "rtp-ports")).toMatchObject({ ok: true });
  });
});
