import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
// @ts-ignore TS6059: test helpers live outside tsconfig's rootDir (src); the import is type-checked all the same.
import { rejection, useFakeUpstream } from '../../../test/helpers/fake-upstream.js';
import type { ChatCompletionChunk, ChatCompletionRequest } from '../types.js';
import { AnthropicProvider } from './provider.js';

const recorded = readFileSync(new URL('./fixtures/tool-use-stream.sse', import.meta.url), 'utf8');

const upstream = useFakeUpstream();

function provider(): AnthropicProvider {
  return upstream.track(
    new AnthropicProvider('claude', {
      kind: 'anthropic',
      baseUrl: upstream.url,
      apiKey: 'sk-ant-test',
      version: '2023-06-01',
      headers: { 'anthropic-beta': 'prompt-caching-2024-07-31' },
      defaultMaxTokens: 1024,
      maxConnections: 4,
      keepAliveTimeoutMs: 10_000,
    }),
  );
}

const opts = () => ({ signal: new AbortController().signal, upstreamModel: 'claude-3-5-haiku-20241022', requestId: 'req-9' });

const request: ChatCompletionRequest = {
  model: 'smart',
  messages: [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'Weather in SF?' },
  ],
  tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { location: { type: 'string' } } } } }],
};

describe('AnthropicProvider against a fake Messages API', () => {
  it('chat: sends a translated request with Anthropic headers and translates the answer', async () => {
    upstream.handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          id: 'msg_1',
          type: 'message',
          role: 'assistant',
          model: 'claude-3-5-haiku-20241022',
          content: [
            { type: 'text', text: 'Checking.' },
            { type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { location: 'SF' } },
          ],
          stop_reason: 'tool_use',
          usage: { input_tokens: 20, cache_read_input_tokens: 100, output_tokens: 7 },
        }),
      );
    };
    const out = await provider().chat(request, opts());
    const s = upstream.seen[0]!;
    expect(s.url).toBe('/v1/messages');
    expect(s.headers['x-api-key']).toBe('sk-ant-test');
    expect(s.headers['anthropic-version']).toBe('2023-06-01');
    expect(s.headers['anthropic-beta']).toBe('prompt-caching-2024-07-31');
    expect(s.headers['x-request-id']).toBe('req-9');
    expect(s.headers).not.toHaveProperty('authorization');
    expect(s.body).toEqual({
      model: 'claude-3-5-haiku-20241022',
      system: 'Be brief.',
      messages: [{ role: 'user', content: [{ type: 'text', text: 'Weather in SF?' }] }],
      max_tokens: 1024,
      tools: [{ name: 'get_weather', input_schema: { type: 'object', properties: { location: { type: 'string' } } } }],
    });
    expect(out.id).toBe('msg_1');
    expect(out.choices[0]!.message).toEqual({
      role: 'assistant',
      content: 'Checking.',
      tool_calls: [{ id: 'toolu_1', type: 'function', function: { name: 'get_weather', arguments: '{"location":"SF"}' } }],
    });
    expect(out.choices[0]!.finish_reason).toBe('tool_calls');
    expect(out.usage).toEqual({ prompt_tokens: 120, completion_tokens: 7, total_tokens: 127, prompt_tokens_details: { cached_tokens: 100 } });
  });

  it('chatStream: streams the recorded event sequence as OpenAI chunks ending in usage', async () => {
    upstream.handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      // Send in odd-sized pieces so events straddle chunk boundaries.
      const bytes = Buffer.from(recorded);
      let i = 0;
      const timer = setInterval(() => {
        res.write(bytes.subarray(i, i + 97));
        i += 97;
        if (i >= bytes.length) {
          clearInterval(timer);
          res.end();
        }
      }, 1);
    };
    const chunks: ChatCompletionChunk[] = [];
    for await (const c of await provider().chatStream(request, opts())) chunks.push(c);
    expect(upstream.seen[0]!.body.stream).toBe(true);
    expect(chunks[0]!.choices[0]!.delta.role).toBe('assistant');
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe("Okay, let's check the weather.");
    const args = chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []).map((d) => d.function?.arguments ?? '');
    expect(JSON.parse(args.join(''))).toEqual({ location: 'San Francisco, CA', unit: 'fahrenheit' });
    expect(chunks.at(-2)!.choices[0]!.finish_reason).toBe('tool_calls');
    expect(chunks.at(-1)!.usage).toMatchObject({ prompt_tokens: 1492, completion_tokens: 89, prompt_tokens_details: { cached_tokens: 1000 } });
  });

  it('chatStream: a body that ends before message_stop is a stream-phase protocol error', async () => {
    const cut = recorded.slice(0, recorded.indexOf('event: message_delta'));
    upstream.handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(cut);
    };
    const chunks: ChatCompletionChunk[] = [];
    const err = await rejection(
      (async () => {
        for await (const c of await provider().chatStream(request, opts())) chunks.push(c);
      })(),
    );
    expect(chunks.length).toBeGreaterThan(0);
    expect(err.kind).toBe('protocol');
    expect(err.phase).toBe('stream');
  });

  it('chatStream: an in-stream overloaded error becomes a retryable 529', async () => {
    upstream.handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(
        recorded.slice(0, recorded.indexOf('event: content_block_start')) +
          'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n',
      );
    };
    const err = await rejection(
      (async () => {
        for await (const _ of await provider().chatStream(request, opts())) void _;
      })(),
    );
    expect([err.kind, err.status, err.phase, err.retryable]).toEqual(['http', 529, 'stream', true]);
  });

  it('maps an Anthropic error body to an http error with its message', async () => {
    upstream.handler = (_req, res) => {
      res.writeHead(529, { 'content-type': 'application/json', 'retry-after': '2' });
      res.end(JSON.stringify({ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } }));
    };
    const err = await rejection(provider().chat(request, opts()));
    expect([err.kind, err.status, err.upstreamMessage, err.retryAfterMs]).toEqual(['http', 529, 'Overloaded', 2000]);
  });

  it('rejects an untranslatable request with a 400 before calling upstream', async () => {
    const bad: ChatCompletionRequest = {
      model: 'smart',
      messages: [
        { role: 'user', content: 'x' },
        { role: 'assistant', content: null, tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: 'nope' } }] },
      ],
    };
    const err = await rejection(provider().chat(bad, opts()));
    expect(err.status).toBe(400);
    expect(err.message).toContain('messages[1].tool_calls[0].function.arguments');
    expect(upstream.seen).toHaveLength(0);
  });

  it('does not serve embeddings', async () => {
    const err = await rejection(provider().embed({ model: 'x', input: 'hi' }, opts()));
    expect([err.kind, err.status, err.message]).toEqual(['http', 400, 'anthropic does not serve embeddings']);
  });
});
