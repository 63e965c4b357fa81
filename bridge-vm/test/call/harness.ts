/**
 * A UA stack on a FakeTransport and a ManualClock, with a recording MediaEngine: enough to drive a call
 * through every timer without waiting. The transaction layer, UA core, policy and call code are real.
 */
import { CallManager, type CallManagerOptions } from "../../src/call/manager";
import type { CallEnded } from "../../src/call/types";
import type { CallMedia, MediaEngine, MediaParams } from "../../src/media/types";
import type { SipRequest } from "../../src/sip/message/types";
import { ManualClock } from "../../src/sip/transaction/clock";
import { TransactionLayer } from "../../src/sip/transaction/layer";
import { SourceAllowList } from "../../src/sip/ua/cidr";
import { CallPolicy } from "../../src/sip/ua/policy";
import { UaCore } from "../../src/sip/ua/ua";
import { captureLogger, FakeTransport, flush } from "../sip/transaction/fake-transport";
import { request } from "../sip/transaction/helpers";

export const OFFER = [
  "v=0",
  "o=caller 1000 1 IN IP4 127.0.0.1",
  "s=-",
  "c=IN IP4 127.0.0.1",
  "t=0 0",
  "m=audio 30000 RTP/AVP 0 8 101",
  "a=rtpmap:0 PCMU/8000",
  "a=rtpmap:8 PCMA/8000",
  "a=rtpmap:101 telephone-event/8000",
  "a=fmtp:101 0-16",
  "a=ptime:20",
  "a=sendrecv",
  "",
].join("\r\n");

export function offerWith(version: number, direction = "sendrecv", port = 30000): string {
  return OFFER.replace("o=caller 1000 1", `o=caller 1000 ${version}`)
    .replace("a=sendrecv", `a=${direction}`)
    .replace("m=audio 30000", `m=audio ${port}`);
}

export class RecordingMedia implements CallMedia {
  readonly localPort = 40000;
  started = 0;
  updates: MediaParams[] = [];
  closedWith: string | undefined;
  private timeoutListener: (() => void) | undefined;
  readonly duplex = {} as CallMedia["duplex"];
  on(event: string, listener: () => void): void {
    if (event === "timeout") this.timeoutListener = listener;
  }
  start(): void {
    this.started++;
  }
  update(params: MediaParams): void {
    this.updates.push(params);
  }
  async close(reason: string): Promise<void> {
    this.closedWith ??= reason;
  }
  fireTimeout(): void {
    this.timeoutListener?.();
  }
}

export class RecordingEngine implements MediaEngine {
  readonly opened: RecordingMedia[] = [];
  get activeSessions(): number {
    return this.opened.filter((m) => m.closedWith === undefined).length;
  }
  async open(): Promise<CallMedia> {
    const media = new RecordingMedia();
    this.opened.push(media);
    return media;
  }
}

export interface StackOptions {
  sendRinging?: boolean;
  answerDelayMs?: number;
  maxCallS?: number;
  maxConcurrentCalls?: number;
  sessionExpiresS?: number;
  minSessionExpiresS?: number;
  rejectMode?: "403" | "silent";
  beforeAnswer?: CallManagerOptions["beforeAnswer"];
}

export function createStack(options: StackOptions = {}) {
  const clock = new ManualClock(1_000_000);
  const transport = new FakeTransport();
  const { logger, lines } = captureLogger();
  const layer = new TransactionLayer({
    transports: [transport],
    clock,
    logger,
    sentBy: () => "127.0.0.1:5060",
  });
  const policy = new CallPolicy({
    allowList: new SourceAllowList(["127.0.0.1"]),
    rejectMode: options.rejectMode ?? "403",
    contactToken: "bridge",
  });
  const ua = new UaCore({ layer, policy, clock, logger, contactUri: () => "sip:bridge@127.0.0.1:5060" });
  const media = new RecordingEngine();
  const calls = new CallManager({
    ua,
    clock,
    logger,
    media,
    timers: layer.timers,
    maxConcurrentCalls: options.maxConcurrentCalls ?? 10,
    credentials: { username: "1001", password: "hunter2" },
    ...(options.beforeAnswer ? { beforeAnswer: options.beforeAnswer } : {}),
    settings: {
      sendRinging: options.sendRinging ?? true,
      answerDelayMs: options.answerDelayMs ?? 0,
      maxCallS: options.maxCallS ?? 3600,
      sessionExpiresS: options.sessionExpiresS ?? 1800,
      minSessionExpiresS: options.minSessionExpiresS ?? 90,
      mediaAddress: "127.0.0.1",
      forwardHeaders: ["X-Patchbay-Agent"],
      domain: "pbx.test",
    },
  });
  const ended: CallEnded[] = [];
  calls.onCall((call) => call.on("ended", (info) => ended.push(info)));
  return { clock, transport, layer, ua, calls, media, ended, lines, policy };
}

export type Stack = ReturnType<typeof createStack>;

export function invite(
  options: { body?: string; extra?: string; branch?: string; uriUser?: string } = {},
): SipRequest {
  const req = request("INVITE", {
    branch: options.branch ?? "z9hG4bK-invite-1",
    body: options.body ?? OFFER,
    extra: [
      "Content-Type: application/sdp",
      "Allow: INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE",
      options.extra,
    ]
      .filter(Boolean)
      .join("\n"),
  });
  if (options.uriUser) req.uri = `sip:${options.uriUser}@127.0.0.1:5060`;
  return req;
}

const tags = new WeakMap<Stack, string>();

/** Our To tag: from the first call's dialog, remembered after the call is gone. */
export function ourTag(stack: Stack): string {
  const tag = stack.calls.list()[0]?.dialog?.id.localTag ?? tags.get(stack);
  if (!tag) throw new Error("no dialog yet");
  tags.set(stack, tag);
  return tag;
}

/** An in-dialog request from the caller. */
export function inDialog(
  stack: Stack,
  method: string,
  cseq: number,
  options: { body?: string; extra?: string; branch?: string } = {},
): SipRequest {
  const extra = [options.body ? "Content-Type: application/sdp" : undefined, options.extra]
    .filter(Boolean)
    .join("\n");
  return request(method, {
    branch: options.branch ?? `z9hG4bK-${method}-${cseq}`,
    cseq,
    toTag: ourTag(stack),
    ...(options.body ? { body: options.body } : {}),
    ...(extra ? { extra } : {}),
  });
}

/** Deliver an INVITE and let the call answer; returns after the 200 OK went out. */
export async function answeredCall(stack: Stack, inviteRequest: SipRequest = invite()): Promise<void> {
  stack.transport.deliver(inviteRequest);
  await flush();
}

export { flush };

/** A confirmed call (INVITE answered, ACK in), the transport cleared: ready for mid-dialog tests. */
export async function confirmedCall(options: StackOptions = {}) {
  const stack = createStack(options);
  await answeredCall(stack, invite());
  stack.transport.deliver(inDialog(stack, "ACK", 1));
  await flush();
  stack.transport.clear();
  return { stack, call: stack.calls.list()[0]! };
}
