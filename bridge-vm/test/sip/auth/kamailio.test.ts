/**
 * The digest code against a real registrar: Kamailio 5.6 (MD5 and SHA-256, RFC 8760), over loopback UDP.
 * Only the message and auth layers are used (no transport/transaction), so a failure here points at the
 * bytes we compute, not at retransmission logic. SIPp cannot do SHA-256 client-side; Kamailio can verify it.
 */
import { createSocket, type Socket } from "node:dgram";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type KamailioInstance, startKamailio } from "../../../../test/support/kamailio";
import { DigestClient, type DigestDecision } from "../../../src/sip/auth";
import {
  createRequest,
  generateBranch,
  generateCallId,
  generateTag,
  parseSipMessage,
  type SipRequest,
  type SipResponse,
  serializeSipMessage,
} from "../../../src/sip/message";

const USER = { username: "bridge", password: "c0rrect-h0rse" };

class UdpClient {
  private readonly socket: Socket = createSocket("udp4");
  private waiting: ((response: SipResponse) => void) | undefined;
  port = 0;

  async open(): Promise<void> {
    this.socket.on("message", (bytes) => {
      const parsed = parseSipMessage(bytes);
      if (parsed.ok && parsed.message.kind === "response" && parsed.message.status >= 200) {
        this.waiting?.(parsed.message);
      }
    });
    await new Promise<void>((resolve) => this.socket.bind(0, "127.0.0.1", resolve));
    this.port = this.socket.address().port;
  }

  /** Send and wait for the final response (resending every 500 ms, like Timer E, at most 6 times). */
  async request(request: SipRequest, kamailio: KamailioInstance): Promise<SipResponse> {
    const bytes = serializeSipMessage(request);
    return new Promise<SipResponse>((resolve, reject) => {
      let tries = 0;
      const send = () => {
        if (tries++ >= 6) {
          clearInterval(timer);
          reject(new Error(`no final response to ${request.method}`));
          return;
        }
        this.socket.send(bytes, kamailio.port, kamailio.host);
      };
      const timer = setInterval(send, 500);
      this.waiting = (response) => {
        clearInterval(timer);
        this.waiting = undefined;
        resolve(response);
      };
      send();
    });
  }

  close(): void {
    this.socket.close();
  }
}

function makeRegister(
  kamailio: KamailioInstance,
  client: UdpClient,
  state: { callId: string; tag: string; cseq: number },
) {
  state.cseq++;
  const aor = `sip:${USER.username}@${kamailio.domain}`;
  return createRequest("REGISTER", `sip:${kamailio.domain}:${kamailio.port}`, [
    ["Via", `SIP/2.0/UDP 127.0.0.1:${client.port};branch=${generateBranch()};rport`],
    ["Max-Forwards", "70"],
    ["From", `<${aor}>;tag=${state.tag}`],
    ["To", `<${aor}>`],
    ["Call-ID", state.callId],
    ["CSeq", `${state.cseq} REGISTER`],
    ["Contact", `<sip:${USER.username}@127.0.0.1:${client.port}>`],
    ["Expires", "60"],
  ]);
}

function withAuth(request: SipRequest, decision: DigestDecision): SipRequest {
  if (decision.action !== "retry") throw new Error(`expected a retry, got ${decision.reason}`);
  request.headers.set(decision.headerName, decision.headerValue);
  return request;
}

for (const algorithm of ["MD5", "SHA-256"] as const) {
  describe(`digest against Kamailio (${algorithm})`, () => {
    let kamailio: KamailioInstance;
    let udp: UdpClient;

    beforeAll(async () => {
      kamailio = await startKamailio({ users: [USER], algorithm, nonceExpireS: 2 });
      udp = new UdpClient();
      await udp.open();
    });

    afterAll(async () => {
      udp?.close();
      await kamailio?.stop();
    });

    it("registers after one challenge, then refreshes pre-emptively, and retries a stale nonce", async () => {
      const state = { callId: generateCallId(), tag: generateTag(), cseq: 0 };
      const client = new DigestClient(USER);

      const first = makeRegister(kamailio, udp, state);
      const challenge = await udp.request(first, kamailio);
      expect(challenge.status).toBe(401);
      expect(challenge.headers.get("WWW-Authenticate")).toContain(`algorithm=${algorithm}`);
      const decision = client.respondToChallenge(challenge, first);
      expect(decision).toMatchObject({ action: "retry", stale: false, challenge: { algorithm } });

      const ok = await udp.request(withAuth(makeRegister(kamailio, udp, state), decision), kamailio);
      expect(ok.status).toBe(200);
      client.succeeded();

      // Pre-emptive refresh with the cached nonce: nc=00000002 must be accepted.
      const cached = client.authorize("REGISTER", `sip:${kamailio.domain}:${kamailio.port}`);
      expect(cached?.headerValue).toContain("nc=00000002");
      const refresh = makeRegister(kamailio, udp, state);
      refresh.headers.set(cached!.headerName, cached!.headerValue);
      expect((await udp.request(refresh, kamailio)).status).toBe(200);

      // After the nonce lifetime, the cached nonce is answered with stale=true: retry at once, no failure.
      await new Promise((resolve) => setTimeout(resolve, 3000));
      const late = makeRegister(kamailio, udp, state);
      const lateAuth = client.authorize("REGISTER", `sip:${kamailio.domain}:${kamailio.port}`)!;
      late.headers.set(lateAuth.headerName, lateAuth.headerValue);
      const staleChallenge = await udp.request(late, kamailio);
      expect(staleChallenge.status).toBe(401);
      const staleDecision = client.respondToChallenge(staleChallenge, late);
      expect(staleDecision).toMatchObject({ action: "retry", stale: true });
      expect(
        (await udp.request(withAuth(makeRegister(kamailio, udp, state), staleDecision), kamailio)).status,
      ).toBe(200);
    });

    it("stops after one retry when the password is wrong", async () => {
      const state = { callId: generateCallId(), tag: generateTag(), cseq: 0 };
      const client = new DigestClient({ username: USER.username, password: "wrong" });
      const first = makeRegister(kamailio, udp, state);
      const decision = client.respondToChallenge(await udp.request(first, kamailio), first);
      const second = withAuth(makeRegister(kamailio, udp, state), decision);
      const refused = await udp.request(second, kamailio);
      // Kamailio re-challenges with a brand-new nonce and no stale flag: that must read as "wrong password".
      expect(refused.status).toBe(401);
      expect(client.respondToChallenge(refused, second)).toEqual({
        action: "fail",
        reason: "credentials-rejected",
      });
    });
  });
}
