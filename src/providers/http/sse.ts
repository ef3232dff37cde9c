/**
 * A Server-Sent Events parser (the WHATWG event-stream format) over raw body bytes.
 *
 * Handles LF, CR and CRLF line ends (a CRLF split across two chunks too), multi-byte UTF-8
 * characters split across chunks, multi-line `data:`, comments (`:` lines) and events split
 * across any number of chunks. `id:` and `retry:` are parsed per the spec but not surfaced: no
 * provider protocol needs them.
 */

/** One dispatched event. `event` is absent when the stream gave no `event:` field. */
export interface SseEvent {
  event?: string;
  data: string;
}

const LF = 10;
const CR = 13;

/** Incremental parser: feed chunks with {@link push}, then call {@link end} once. */
export class SseParser {
  private readonly decoder = new TextDecoder('utf-8');
  /** Text of an unterminated line carried over from the previous chunk. */
  private partial = '';
  /** The previous chunk ended in CR: a LF at the start of the next chunk belongs to it. */
  private pendingCR = false;
  private data = '';
  private hasData = false;
  private eventType: string | undefined = undefined;

  /** Parses a chunk; returns the events it completed (often none or one). */
  push(chunk: Uint8Array): SseEvent[] {
    let start = 0;
    if (this.pendingCR && chunk.length > 0) {
      this.pendingCR = false;
      if (chunk[0] === LF) start = 1;
    }
    if (start >= chunk.length) return [];
    const text = this.decoder.decode(start === 0 ? chunk : chunk.subarray(start), { stream: true });
    return this.feed(text, false);
  }

  /** Flushes the parser at end of body. A last event missing its blank line is still dispatched. */
  end(): SseEvent[] {
    const text = this.decoder.decode();
    const out = this.feed(text, true);
    this.dispatch(out);
    return out;
  }

  private feed(text: string, final: boolean): SseEvent[] {
    const out: SseEvent[] = [];
    const buf = this.partial.length > 0 ? this.partial + text : text;
    this.partial = '';
    // Cached positions of the next CR / LF: each is searched at most once per buffer pass, so a
    // chunk with many lines is scanned in linear time.
    let nextLF = -2;
    let nextCR = -2;
    let pos = 0;
    const len = buf.length;
    while (pos < len) {
      if (nextLF !== -1 && nextLF < pos) nextLF = buf.indexOf('\n', pos);
      if (nextCR !== -1 && nextCR < pos) nextCR = buf.indexOf('\r', pos);
      let eol: number;
      if (nextLF === -1) eol = nextCR;
      else if (nextCR === -1) eol = nextLF;
      else eol = nextLF < nextCR ? nextLF : nextCR;
      if (eol === -1) break;
      this.line(buf, pos, eol, out);
      if (buf.charCodeAt(eol) === CR) {
        if (eol + 1 < len) {
          pos = buf.charCodeAt(eol + 1) === LF ? eol + 2 : eol + 1;
        } else {
          // The LF of this CRLF may arrive in the next chunk.
          this.pendingCR = true;
          pos = len;
        }
      } else {
        pos = eol + 1;
      }
    }
    if (pos < len) {
      if (final) this.line(buf, pos, len, out);
      else this.partial = buf.slice(pos);
    }
    return out;
  }

  private line(buf: string, start: number, end: number, out: SseEvent[]): void {
    if (start === end) {
      this.dispatch(out);
      return;
    }
    if (buf.charCodeAt(start) === 58 /* : */) return; // comment
    const colon = buf.indexOf(':', start);
    let field: string;
    let value: string;
    if (colon === -1 || colon >= end) {
      field = buf.slice(start, end);
      value = '';
    } else {
      field = buf.slice(start, colon);
      let v = colon + 1;
      if (v < end && buf.charCodeAt(v) === 32 /* space */) v++;
      value = buf.slice(v, end);
    }
    switch (field) {
      case 'data':
        this.data = this.hasData ? this.data + '\n' + value : value;
        this.hasData = true;
        break;
      case 'event':
        this.eventType = value;
        break;
      default:
        // id, retry and unknown fields are ignored.
        break;
    }
  }

  private dispatch(out: SseEvent[]): void {
    if (this.hasData) {
      out.push(this.eventType === undefined || this.eventType === '' ? { data: this.data } : { event: this.eventType, data: this.data });
    }
    this.data = '';
    this.hasData = false;
    this.eventType = undefined;
  }
}

/** Parses a whole byte stream into events. */
export async function* parseSse(body: AsyncIterable<Uint8Array>): AsyncGenerator<SseEvent, void, undefined> {
  const parser = new SseParser();
  for await (const chunk of body) {
    for (const ev of parser.push(chunk)) yield ev;
  }
  for (const ev of parser.end()) yield ev;
}
