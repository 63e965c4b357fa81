import { afterAll, describe, expect, it } from "vitest";
import { type KamailioInstance, sipOptionsPing, startKamailio } from "../support/kamailio";
import { assertNothingLeft } from "../support/process";

describe("startKamailio", () => {
  let kamailio: KamailioInstance | undefined;
  afterAll(async () => {
    await kamailio?.stop();
    assertNothingLeft();
  });

  it("starts from the rendered config and answers OPTIONS", async () => {
    kamailio = await startKamailio({ users: [{ username: "alice", password: "s3cret" }] });
    expect(await sipOptionsPing(kamailio.host, kamailio.port)).toBe(true);
  });
});
