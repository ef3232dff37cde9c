import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SseParser, type SseEvent } from '../http/sse.js';
import { UpstreamError, type ChatCompletionChunk } from '../types.js';
import { AnthropicStreamTranslator, isMessageStop } from './translate-stream.js';

const recorded = readFileSync(new URL('./fixtures/tool-use-stream.sse', import.meta.url), 'utf8');

function events(text: string): SseEvent[] {
  const p = new SseParser();
  return [...p.push(new TextEncoder().encode(text)), ...p.end()];
}

function translateAll(evs: SseEvent[]): ChatCompletionChunk[] {
  const t = new AnthropicStreamTranslator({ created: 1700000000 });
  return evs.flatMap((ev) => t.push(ev));
}

const ev = (data: unknown): SseEvent => ({ event: (data as { type: string }).type, data: JSON.stringify(data) });

describe('AnthropicStreamTranslator on a recorded text + tool_use stream', () => {
  const chunks = translateAll(events(recorded));

  it('starts with the assistant role, carrying the message id and model', () => {
    expect(chunks[0]).toEqual({
      id: 'msg_014p7gG3wDgGV9EUtLvnow3U',
      object: 'chat.completion.chunk',
      created: 1700000000,
      model: 'claude-3-5-haiku-20241022',
      choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }],
    });
    expect(chunks.every((c) => c.id === 'msg_014p7gG3wDgGV9EUtLvnow3U')).toBe(true);
  });

  it('streams the text as content deltas', () => {
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
    expect(text).toBe("Okay, let's check the weather.");
  });

  it('opens the tool call with index, id and name, then streams its arguments', () => {
    const toolDeltas = chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []);
    expect(toolDeltas[0]).toEqual({
      index: 0,
      id: 'toolu_01T1x1fJ34qAmk2tNTrN7Up6',
      type: 'function',
      function: { name: 'get_weather', arguments: '' },
    });
    expect(toolDeltas.every((d) => d.index === 0)).toBe(true);
    const args = toolDeltas.map((d) => d.function?.arguments ?? '').join('');
    expect(JSON.parse(args)).toEqual({ location: 'San Francisco, CA', unit: 'fahrenheit' });
  });

  it('ends with a finish chunk, then a usage chunk with no choices', () => {
    const finish = chunks[chunks.length - 2]!;
    const usage = chunks[chunks.length - 1]!;
    expect(finish.choices).toEqual([{ index: 0, delta: {}, finish_reason: 'tool_calls' }]);
    expect(usage.choices).toEqual([]);
    expect(usage.usage).toEqual({
      prompt_tokens: 472 + 1000 + 20,
      completion_tokens: 89,
      total_tokens: 472 + 1000 + 20 + 89,
      prompt_tokens_details: { cached_tokens: 1000 },
    });
    expect(chunks.slice(0, -2).every((c) => c.choices[0]?.finish_reason === null)).toBe(true);
  });

  it('marks message_stop as the terminal event', () => {
    const evs = events(recorded);
    expect(evs.filter(isMessageStop)).toEqual([evs[evs.length - 1]]);
    expect(isMessageStop({ data: '{"type":"message_stop"}' })).toBe(true);
    expect(isMessageStop({ event: 'ping', data: '{"type":"ping"}' })).toBe(false);
  });
});

describe('AnthropicStreamTranslator', () => {
  it('numbers several tool calls by their own order, not the content block index', () => {
    const chunks = translateAll([
      ev({ type: 'message_start', message: { id: 'm', model: 'c', usage: { input_tokens: 1, output_tokens: 1 } } }),
      ev({ type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }),
      ev({ type: 'content_block_start', index: 1, content_block: { type: 'tool_use', id: 'a', name: 'f', input: {} } }),
      ev({ type: 'content_block_start', index: 2, content_block: { type: 'tool_use', id: 'b', name: 'g', input: {} } }),
      ev({ type: 'content_block_delta', index: 2, delta: { type: 'input_json_delta', partial_json: '{}' } }),
    ]);
    const deltas = chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []);
    expect(deltas.map((d) => [d.index, d.id ?? null])).toEqual([
      [0, 'a'],
      [1, 'b'],
      [1, null],
    ]);
  });

  it('maps max_tokens to length and ignores ping', () => {
    const chunks = translateAll([
      ev({ type: 'message_start', message: { id: 'm', model: 'c', usage: { input_tokens: 5, output_tokens: 1 } } }),
      ev({ type: 'ping' }),
      ev({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'cut' } }),
      ev({ type: 'message_delta', delta: { stop_reason: 'max_tokens' }, usage: { output_tokens: 16 } }),
      ev({ type: 'message_stop' }),
    ]);
    expect(chunks).toHaveLength(4);
    expect(chunks[2]!.choices[0]!.finish_reason).toBe('length');
    expect(chunks[3]!.usage).toMatchObject({ prompt_tokens: 5, completion_tokens: 16, total_tokens: 21 });
  });

  it('throws a stream-phase 529 for an overloaded error event and 500 for others', () => {
    const t = new AnthropicStreamTranslator();
    t.push(ev({ type: 'message_start', message: { id: 'm', model: 'c', usage: {} } }));
    let caught: unknown;
    try {
      t.push(ev({ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } }));
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(UpstreamError);
    const e = caught as UpstreamError;
    expect([e.kind, e.status, e.phase, e.upstreamMessage, e.retryable]).toEqual(['http', 529, 'stream', 'Overloaded', true]);
    expect(() => new AnthropicStreamTranslator().push(ev({ type: 'error', error: { type: 'api_error', message: 'boom' } }))).toThrow(
      expect.objectContaining({ status: 500, phase: 'stream' }),
    );
  });

  it('throws a stream-phase protocol error for an event that is not JSON', () => {
    expect(() => new AnthropicStreamTranslator().push({ event: 'content_block_delta', data: '{oops' })).toThrow(
      expect.objectContaining({ kind: 'protocol', phase: 'stream' }),
    );
  });
});
