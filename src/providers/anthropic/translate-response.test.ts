import { describe, expect, it } from 'vitest';
import { fromAnthropicMessage, toFinishReason, toUsage } from './translate-response.js';
import type { AnthropicMessage } from './wire.js';

const base: AnthropicMessage = {
  id: 'msg_01',
  type: 'message',
  role: 'assistant',
  model: 'claude-3-5-sonnet-20241022',
  content: [],
  stop_reason: 'end_turn',
  usage: { input_tokens: 10, output_tokens: 5 },
};

describe('fromAnthropicMessage', () => {
  it('concatenates text blocks and carries id, model and created', () => {
    const out = fromAnthropicMessage(
      {
        ...base,
        content: [
          { type: 'thinking', thinking: 'hmm', signature: 'x' },
          { type: 'text', text: 'Hello, ' },
          { type: 'text', text: 'world.' },
        ],
      },
      1700000000,
    );
    expect(out).toEqual({
      id: 'msg_01',
      object: 'chat.completion',
      created: 1700000000,
      model: 'claude-3-5-sonnet-20241022',
      choices: [{ index: 0, message: { role: 'assistant', content: 'Hello, world.' }, finish_reason: 'stop', logprobs: null }],
      usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15, prompt_tokens_details: { cached_tokens: 0 } },
    });
  });

  it('turns tool_use blocks into tool_calls with JSON arguments', () => {
    const out = fromAnthropicMessage({
      ...base,
      stop_reason: 'tool_use',
      content: [
        { type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { city: 'Paris', days: 2 } },
        { type: 'tool_use', id: 'toolu_2', name: 'now', input: {} },
      ],
    });
    const choice = out.choices[0]!;
    expect(choice.finish_reason).toBe('tool_calls');
    expect(choice.message.content).toBeNull();
    expect(choice.message.tool_calls).toEqual([
      { id: 'toolu_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris","days":2}' } },
      { id: 'toolu_2', type: 'function', function: { name: 'now', arguments: '{}' } },
    ]);
    expect(JSON.parse(choice.message.tool_calls![0]!.function.arguments)).toEqual({ city: 'Paris', days: 2 });
  });

  it('keeps text next to tool calls', () => {
    const out = fromAnthropicMessage({
      ...base,
      stop_reason: 'tool_use',
      content: [
        { type: 'text', text: 'Let me check.' },
        { type: 'tool_use', id: 't', name: 'f', input: {} },
      ],
    });
    expect(out.choices[0]!.message.content).toBe('Let me check.');
    expect(out.choices[0]!.message.tool_calls).toHaveLength(1);
  });

  it('answers an empty content list with an empty string', () => {
    expect(fromAnthropicMessage(base).choices[0]!.message.content).toBe('');
  });
});

describe('toFinishReason', () => {
  it.each([
    ['end_turn', 'stop'],
    ['stop_sequence', 'stop'],
    ['max_tokens', 'length'],
    ['tool_use', 'tool_calls'],
    ['refusal', 'content_filter'],
    ['pause_turn', 'stop'],
  ] as const)('%s -> %s', (stop, finish) => {
    expect(toFinishReason(stop)).toBe(finish);
  });
});

describe('toUsage', () => {
  it('counts cache reads and cache writes as prompt tokens and reports reads as cached', () => {
    expect(toUsage({ input_tokens: 50, cache_read_input_tokens: 1000, cache_creation_input_tokens: 200, output_tokens: 30 })).toEqual({
      prompt_tokens: 1250,
      completion_tokens: 30,
      total_tokens: 1280,
      prompt_tokens_details: { cached_tokens: 1000 },
    });
  });

  it('treats missing and null counts as zero', () => {
    expect(toUsage({ input_tokens: 3, cache_read_input_tokens: null })).toEqual({
      prompt_tokens: 3,
      completion_tokens: 0,
      total_tokens: 3,
      prompt_tokens_details: { cached_tokens: 0 },
    });
  });
});
