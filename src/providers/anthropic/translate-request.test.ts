import { describe, expect, it } from 'vitest';
import { UpstreamError, type ChatCompletionRequest } from '../types.js';
import { toAnthropicRequest } from './translate-request.js';

const opts = { model: 'claude-up', defaultMaxTokens: 4096 };
const translate = (req: Partial<ChatCompletionRequest>) =>
  toAnthropicRequest({ model: 'public', messages: [{ role: 'user', content: 'hi' }], ...req }, opts);

function rejection(fn: () => unknown): UpstreamError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(UpstreamError);
    return err as UpstreamError;
  }
  throw new Error('expected a throw');
}

describe('toAnthropicRequest', () => {
  it('lifts system and developer messages into a joined top-level system prompt', () => {
    const out = translate({
      messages: [
        { role: 'system', content: 'You are terse.' },
        { role: 'developer', content: [{ type: 'text', text: 'Answer in French.' }] },
        { role: 'user', content: 'Hello' },
      ],
    });
    expect(out.system).toBe('You are terse.\n\nAnswer in French.');
    expect(out.messages).toEqual([{ role: 'user', content: [{ type: 'text', text: 'Hello' }] }]);
    expect(out.model).toBe('claude-up');
  });

  it('omits system when there is none', () => {
    expect(translate({})).not.toHaveProperty('system');
  });

  it('translates image parts: data URLs to base64 sources, http URLs to url sources', () => {
    const out = translate({
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'What is in these?' },
            { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } },
            { type: 'image_url', image_url: { url: 'https://example.com/cat.jpg', detail: 'high' } },
          ],
        },
      ],
    });
    expect(out.messages[0]!.content).toEqual([
      { type: 'text', text: 'What is in these?' },
      { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } },
      { type: 'image', source: { type: 'url', url: 'https://example.com/cat.jpg' } },
    ]);
  });

  it('rejects unsupported image URLs and content parts, naming the field', () => {
    const bad = rejection(() =>
      translate({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'ftp://x/y.png' } }] }] }),
    );
    expect(bad.status).toBe(400);
    expect(bad.retryable).toBe(false);
    expect(bad.message).toContain('messages[0].content[0].image_url.url');
    const audio = rejection(() => translate({ messages: [{ role: 'user', content: [{ type: 'input_audio', input_audio: {} }] }] }));
    expect(audio.message).toContain('messages[0].content[0].type');
  });

  it('turns assistant tool_calls into tool_use blocks and tool messages into one user turn of tool_results', () => {
    const out = translate({
      messages: [
        { role: 'user', content: 'Weather in Paris and Rome?' },
        {
          role: 'assistant',
          content: 'Checking.',
          tool_calls: [
            { id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
            { id: 'call_2', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Rome"}' } },
          ],
        },
        { role: 'tool', tool_call_id: 'call_1', content: '18C' },
        { role: 'tool', tool_call_id: 'call_2', content: [{ type: 'text', text: '24C' }] },
        { role: 'user', content: 'Thanks, which is warmer?' },
      ],
    });
    expect(out.messages).toEqual([
      { role: 'user', content: [{ type: 'text', text: 'Weather in Paris and Rome?' }] },
      {
        role: 'assistant',
        content: [
          { type: 'text', text: 'Checking.' },
          { type: 'tool_use', id: 'call_1', name: 'get_weather', input: { city: 'Paris' } },
          { type: 'tool_use', id: 'call_2', name: 'get_weather', input: { city: 'Rome' } },
        ],
      },
      {
        role: 'user',
        content: [
          { type: 'tool_result', tool_use_id: 'call_1', content: '18C' },
          { type: 'tool_result', tool_use_id: 'call_2', content: '24C' },
          { type: 'text', text: 'Thanks, which is warmer?' },
        ],
      },
    ]);
  });

  it('sends a pure tool call (content null, empty arguments) as a tool_use with an empty input', () => {
    const out = translate({
      messages: [
        { role: 'user', content: 'time?' },
        { role: 'assistant', content: null, tool_calls: [{ id: 'c', type: 'function', function: { name: 'now', arguments: '' } }] },
      ],
    });
    expect(out.messages[1]).toEqual({ role: 'assistant', content: [{ type: 'tool_use', id: 'c', name: 'now', input: {} }] });
  });

  it('rejects tool call arguments that are not JSON, naming the field', () => {
    const err = rejection(() =>
      translate({
        messages: [
          { role: 'user', content: 'x' },
          { role: 'assistant', content: null, tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '{"a":' } }] },
        ],
      }),
    );
    expect(err.kind).toBe('http');
    expect(err.status).toBe(400);
    expect(err.message).toBe('messages[1].tool_calls[0].function.arguments is not valid JSON');
    expect(err.upstreamMessage).toBe(err.message);
  });

  it('merges consecutive same-role messages so roles alternate', () => {
    const out = translate({
      messages: [
        { role: 'user', content: 'one' },
        { role: 'user', content: 'two' },
        { role: 'assistant', content: 'a' },
        { role: 'system', content: 'ignored position' },
        { role: 'assistant', content: 'b' },
      ],
    });
    expect(out.messages).toEqual([
      { role: 'user', content: [{ type: 'text', text: 'one' }, { type: 'text', text: 'two' }] },
      { role: 'assistant', content: [{ type: 'text', text: 'a' }, { type: 'text', text: 'b' }] },
    ]);
    expect(out.system).toBe('ignored position');
  });

  it('translates tools and every tool_choice form', () => {
    const tools: ChatCompletionRequest['tools'] = [
      { type: 'function', function: { name: 'get_weather', description: 'Weather by city', parameters: { type: 'object', properties: { city: { type: 'string' } } } } },
      { type: 'function', function: { name: 'noop' } },
    ];
    const out = translate({ tools, tool_choice: 'auto' });
    expect(out.tools).toEqual([
      { name: 'get_weather', description: 'Weather by city', input_schema: { type: 'object', properties: { city: { type: 'string' } } } },
      { name: 'noop', input_schema: { type: 'object', properties: {} } },
    ]);
    expect(out.tool_choice).toEqual({ type: 'auto' });
    expect(translate({ tools, tool_choice: 'required' }).tool_choice).toEqual({ type: 'any' });
    expect(translate({ tools, tool_choice: 'none' }).tool_choice).toEqual({ type: 'none' });
    expect(translate({ tools, tool_choice: { type: 'function', function: { name: 'noop' } } }).tool_choice).toEqual({ type: 'tool', name: 'noop' });
    expect(translate({ tools }).tool_choice).toBeUndefined();
    expect(translate({ tools, parallel_tool_calls: false }).tool_choice).toEqual({ type: 'auto', disable_parallel_tool_use: true });
    expect(translate({ tool_choice: 'none' })).not.toHaveProperty('tool_choice');
  });

  it('picks max_completion_tokens, then max_tokens, then the configured default', () => {
    expect(translate({ max_completion_tokens: 10, max_tokens: 20 }).max_tokens).toBe(10);
    expect(translate({ max_tokens: 20 }).max_tokens).toBe(20);
    expect(translate({ max_tokens: null }).max_tokens).toBe(4096);
  });

  it('maps sampling options, stop, user and drops what Anthropic lacks', () => {
    const out = translate({ temperature: 0.3, top_p: 0.9, stop: 'END', user: 'user-42', seed: 7, frequency_penalty: 1 });
    expect(out.temperature).toBe(0.3);
    expect(out.top_p).toBe(0.9);
    expect(out.stop_sequences).toEqual(['END']);
    expect(out.metadata).toEqual({ user_id: 'user-42' });
    expect(out).not.toHaveProperty('seed');
    expect(out).not.toHaveProperty('frequency_penalty');
    expect(translate({ stop: ['a', 'b'] }).stop_sequences).toEqual(['a', 'b']);
    expect(translate({ temperature: 1.8 }).temperature).toBe(1);
  });

  it('asks for JSON in the system prompt when response_format wants JSON', () => {
    const out = translate({ messages: [{ role: 'system', content: 'Be helpful.' }, { role: 'user', content: 'x' }], response_format: { type: 'json_object' } });
    expect(out.system?.startsWith('Be helpful.\n\n')).toBe(true);
    expect(out.system).toMatch(/JSON/);
    const schema = translate({ response_format: { type: 'json_schema', json_schema: { name: 'r', schema: { type: 'object', required: ['ok'] } } } });
    expect(schema.system).toContain('"required":["ok"]');
    expect(translate({ response_format: { type: 'text' } })).not.toHaveProperty('system');
  });

  it('rejects n > 1', () => {
    expect(rejection(() => translate({ n: 2 })).message).toMatch(/^n:/);
  });
});
