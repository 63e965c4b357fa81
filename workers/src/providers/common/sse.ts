/**
 * Server-sent events: a pure line parser (no I/O) plus a thin reader over a byte stream.
 * Only `data:` fields matter to the chat APIs we speak; multi-line data is joined with "\n" per the
 * SSE spec (https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation).
 */

/** A line longer than this is a broken or hostile stream, not a chat chunk. */
export const MAX_SSE_LINE = 1 << 20;

export class SseLineParser {
  private buffer = "";
  private data: string[] = [];

  /** Feed decoded text; returns the data payloads of events completed by it. */
  push(text: string): string[] {
    this.buffer += text;
    const events: string[] = [];
    let newline = this.buffer.search(/\r\n|\n|\r/);
    while (newline !== -1) {
      const line = this.buffer.slice(0, newline);
      const width = this.buffer.startsWith("\r\n", newline) ? 2 : 1;
      this.buffer = this.buffer.slice(newline + width);
      this.line(line, events);
      newline = this.buffer.search(/\r\n|\n|\r/);
    }
    if (this.buffer.length > MAX_SSE_LINE) {
      throw new RangeError(`SSE line too long: got ${this.buffer.length} > max ${MAX_SSE_LINE}`);
    }
    return events;
  }

  /** End of stream: a final event without its blank line still counts. */
  end(): string[] {
    const events: string[] = [];
    if (this.buffer.length > 0) this.line(this.buffer, events);
    this.buffer = "";
    this.dispatch(events);
    return events;
  }

  private line(line: string, events: string[]): void {
    if (line === "") {
      this.dispatch(events);
      return;
    }
    if (line.startsWith(":")) return; // comment / keep-alive
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.data.push(value);
  }

  private dispatch(events: string[]): void {
    if (this.data.length === 0) return;
    events.push(this.data.join("\n"));
    this.data = [];
  }
}

/** Yield each event's data from an SSE byte stream until it ends or `signal` aborts. */
export async function* readSseData(
  stream: ReadableStream<Uint8Array>,
  signal?: AbortSignal,
): AsyncGenerator<string> {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  const parser = new SseLineParser();
  const onAbort = () => {
    reader.cancel(signal?.reason).catch(() => {});
  };
  signal?.addEventListener("abort", onAbort, { once: true });
  let ended = false;
  try {
    while (true) {
      if (signal?.aborted) return;
      const { done, value } = await reader.read();
      if (done) {
        ended = true;
        break;
      }
      for (const data of parser.push(decoder.decode(value, { stream: true }))) yield data;
    }
    // A cancel() on abort ends the read loop like a normal end of stream: do not flush a partial event.
    if (signal?.aborted) return;
    for (const data of parser.push(decoder.decode())) yield data;
    for (const data of parser.end()) yield data;
  } finally {
    signal?.removeEventListener("abort", onAbort);
    // The consumer stopped early (break/return/throw): close the connection instead of leaving it open.
    if (!ended) reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}
