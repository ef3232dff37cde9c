import { describe, expect, it } from 'vitest';
import { SseParser, parseSse, type SseEvent } from './sse.js';

const enc = new TextEncoder();

/** Feeds the text split at the given byte offsets. */
function parseChunks(chunks: Array<string | Uint8Array>): SseEvent[] {
  const parser = new SseParser();
  const out: SseEvent[] = [];
  for (const c of chunks) out.push(...parser.push(typeof c === 'string' ? enc.encode(c) : c));
  out.push(...parser.end());
  return out;
}

/** Every way of splitting `bytes` in two, plus one byte at a time. */
function allSplits(text: string): Uint8Array[][] {
  const bytes = enc.encode(text);
  const splits: Uint8Array[][] = [];
  for (let i = 0; i <= bytes.length; i++) splits.push([bytes.subarray(0, i), bytes.subarray(i)]);
  splits.push(Array.from(bytes, (b) => Uint8Array.of(b)));
  return splits;
}

describe('SseParser', () => {
  it('parses OpenAI-style data-only events and the [DONE] sentinel', () => {
    const events = parseChunks(['data: {"a":1}\n\ndata: {"a":2}\n\ndata: [DONE]\n\n']);
    expect(events).toEqual([{ data: '{"a":1}' }, { data: '{"a":2}' }, { data: '[DONE]' }]);
  });

  it('parses named events (Anthropic style)', () => {
    const events = parseChunks(['event: message_start\ndata: {"type":"message_start"}\n\nevent: ping\ndata: {"type": "ping"}\n\n']);
    expect(events).toEqual([
      { event: 'message_start', data: '{"type":"message_start"}' },
      { event: 'ping', data: '{"type": "ping"}' },
    ]);
  });

  it('gives the same events however the bytes are split across chunks', () => {
    const text = 'event: a\r\ndata: héllo → wörld\r\n\r\n: keep-alive\n\ndata: x\rdata: y\r\rdata: [DONE]\n\n';
    const expected = [{ event: 'a', data: 'héllo → wörld' }, { data: 'x\ny' }, { data: '[DONE]' }];
    expect(parseChunks([text])).toEqual(expected);
    for (const split of allSplits(text)) {
      expect(parseChunks(split)).toEqual(expected);
    }
  });

  it('handles CRLF with the CR and LF in different chunks without inventing a blank line', () => {
    // If the split CRLF were read as CR + LF (two line ends), "data: b" would be dispatched alone.
    const events = parseChunks(['data: a\r', '\ndata: b\r\n\r\n']);
    expect(events).toEqual([{ data: 'a\nb' }]);
  });

  it('joins multi-line data with newlines', () => {
    expect(parseChunks(['data: line 1\ndata: line 2\ndata:\ndata: line 4\n\n'])).toEqual([{ data: 'line 1\nline 2\n\nline 4' }]);
  });

  it('ignores comments, id, retry and unknown fields', () => {
    const events = parseChunks([': comment\nid: 7\nretry: 1000\nfoo: bar\ndata: only\n\n:another\n\n']);
    expect(events).toEqual([{ data: 'only' }]);
  });

  it('strips exactly one space after the colon and accepts none', () => {
    expect(parseChunks(['data:no-space\n\ndata:  two-spaces\n\n'])).toEqual([{ data: 'no-space' }, { data: ' two-spaces' }]);
  });

  it('does not dispatch events without data', () => {
    expect(parseChunks(['event: lonely\n\n\n\ndata: x\n\n'])).toEqual([{ data: 'x' }]);
  });

  it('keeps an empty data field as an empty event', () => {
    expect(parseChunks(['data:\n\n'])).toEqual([{ data: '' }]);
  });

  it('resets the event name after each dispatch', () => {
    expect(parseChunks(['event: a\ndata: 1\n\ndata: 2\n\n'])).toEqual([{ event: 'a', data: '1' }, { data: '2' }]);
  });

  it('dispatches a last event whose blank line never came, and its unterminated last line', () => {
    expect(parseChunks(['data: 1\n\ndata: 2\ndata: 3'])).toEqual([{ data: '1' }, { data: '2\n3' }]);
  });

  it('returns nothing for a chunk that completes no event', () => {
    const parser = new SseParser();
    expect(parser.push(enc.encode('data: {"par'))).toEqual([]);
    expect(parser.push(enc.encode('tial":true}'))).toEqual([]);
    expect(parser.push(enc.encode('\n\n'))).toEqual([{ data: '{"partial":true}' }]);
  });

  it('strips a leading byte order mark', () => {
    expect(parseChunks([Uint8Array.of(0xef, 0xbb, 0xbf), 'data: x\n\n'])).toEqual([{ data: 'x' }]);
  });

  it('parses a large stream of many small events in order', () => {
    const n = 5000;
    let text = '';
    for (let i = 0; i < n; i++) text += `data: {"i":${i}}\n\n`;
    const bytes = enc.encode(text);
    const chunks: Uint8Array[] = [];
    for (let i = 0; i < bytes.length; i += 777) chunks.push(bytes.subarray(i, i + 777));
    const events = parseChunks(chunks);
    expect(events).toHaveLength(n);
    expect(events.every((e, i) => JSON.parse(e.data).i === i)).toBe(true);
  });
});

describe('parseSse', () => {
  it('parses an async byte stream', async () => {
    async function* body(): AsyncGenerator<Uint8Array> {
      yield enc.encode('data: a\n');
      yield enc.encode('\nevent: e\ndata: b\n\n');
    }
    const got: SseEvent[] = [];
    for await (const ev of parseSse(body())) got.push(ev);
    expect(got).toEqual([{ data: 'a' }, { event: 'e', data: 'b' }]);
  });
});
