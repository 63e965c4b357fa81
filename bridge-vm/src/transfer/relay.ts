/**
 * Joins two call legs through the bridge (the warm transfer's `relay` method): each leg's caller
 * frames become the other leg's outgoing audio, and key presses follow. The frames have been through
 * each leg's jitter buffer and go out through the other leg's pacer, so the relayed audio is as clean
 * and evenly paced as the agent's was; the cost is about one jitter-buffer depth plus one frame of
 * latency each way, and the bridge stays in the media path until a leg hangs up.
 */
import { transcodeG711 } from "@patchbay/shared/audio";
import type { CallAudioDuplex, DtmfEvent } from "../media/types";

export interface MediaRelay {
  /** Stop relaying (idempotent). Neither leg is closed: their owners hang them up. */
  stop(): void;
}

export function relayMedia(a: CallAudioDuplex, b: CallAudioDuplex): MediaRelay {
  const stopAToB = forward(a, b);
  const stopBToA = forward(b, a);
  let stopped = false;
  return {
    stop() {
      if (stopped) return;
      stopped = true;
      stopAToB();
      stopBToA();
    },
  };
}

/** One direction: `from`'s caller frames and digits are played / sent on `to`. */
function forward(from: CallAudioDuplex, to: CallAudioDuplex): () => void {
  const converted = new Uint8Array(160);
  const onFrame = (frame: Uint8Array): void => {
    if (from.codec === to.codec) {
      to.enqueueAgentAudio(frame);
      return;
    }
    const target = frame.length <= converted.length ? converted : undefined;
    to.enqueueAgentAudio(transcodeG711(from.codec, to.codec, frame, target));
  };
  const onDtmf = (event: DtmfEvent): void => {
    // A digit that cannot be sent is lost, not fatal to the call.
    to.sendDtmf(event.digit).catch(() => undefined);
  };
  from.on("callerFrame", onFrame);
  from.on("dtmf", onDtmf);
  return () => {
    from.off("callerFrame", onFrame);
    from.off("dtmf", onDtmf);
  };
}
