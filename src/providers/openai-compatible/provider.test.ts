/**
 * OpenAICompatibleProvider against a fake upstream: JSON calls (chat completions and embeddings),
 * their headers and paths, and how each failure maps to an UpstreamError.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
// @ts-ignore TS6059: test helpers live outside tsconfig's rootDir (src); the import is type-checked all the same.
import { chatCompletion } from '../../../test/helpers/completions.js';
// @ts-ignore TS6059: test helpers live outside tsconfig's rootDir (src); the import is type-checked all the same.
import { rejection, socketIdle, useFakeUpstream } from '../../../test/helpers/fake-upstream.js';
import { UpstreamError } from '../types.js';
// @ts-ignore TS6059: test helpers live outside tsconfig's rootDir (src); the import is type-checked all the same.
import { openAIProvider, opts, request } from '../../../test/helpers/openai-provider.js';

const upstream = useFakeUpstream();
const provider = openAIProvider(upstream);

const completion = chatCompletion('hello', { created: 1, model: 'gpt-up', usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 } });

describe('OpenAICompatibleProvider.chat', () => {
  it('posts the request with the upstream model, auth, extra headers and request id', async () => {
    upstream.handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(completion));
    };
    const p = provider({ headers: { 'OpenAI-Organization': 'org-1' } });
    const res = await p.chat({ ...request, stream: true, stream_options: { include_usage: true } }, opts());
    expect(res.choices[0]?.message.content).toBe('hello');
    expect(res.usage?.total_tokens).toBe(4);
    const s = upstream.seen[0]!;
    expect(s.method).toBe('POST');
    expect(s.url).toBe('/v1/chat/completions');
    expect(s.headers.authorization).toBe('Bearer sk-test');
    expect(s.headers['openai-organization']).toBe('org-1');
    expect(s.headers['x-request-id']).toBe('req-123');
    expect(s.headers['content-type']).toBe('application/json');
    expect(s.body.model).toBe('gpt-up');
    expect(s.body.stream).toBe(false);
    expect(s.body).not.toHaveProperty('stream_options');
    expect(s.body.messages).toEqual(request.messages);
    expect(s.body.max_tokens).toBe(16);
  });

  it('sends no Authorization header without an apiKey', async () => {
    upstream.handler = (_req, res) => res.end(JSON.stringify(completion));
    await provider({ apiKey: undefined }).chat(request, opts());
    expect(upstream.seen[0]!.headers).not.toHaveProperty('authorization');
  });

  it('maps 429 with Retry-After to an http error with retryAfterMs', async () => {
    upstream.handler = (_req, res) => {
      res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '7' });
      res.end(JSON.stringify({ error: { message: 'Rate limit reached for gpt-up', type: 'requests' } }));
    };
    const err = await rejection(provider().chat(request, opts()));
    expect(err.kind).toBe('http');
    expect(err.status).toBe(429);
    expect(err.retryAfterMs).toBe(7000);
    expect(err.upstreamMessage).toBe('Rate limit reached for gpt-up');
    expect(err.retryable).toBe(true);
  });

  it('reads retry-after-ms in preference to Retry-After', async () => {
    upstream.handler = (_req, res) => {
      res.writeHead(429, { 'retry-after': '7', 'retry-after-ms': '1500' });
      res.end();
    };
    const err = await rejection(provider().chat(request, opts()));
    expect(err.retryAfterMs).toBe(1500);
    expect(err.upstreamMessage).toBeUndefined();
  });

  it('carries a 500 body message, consumes it and reuses the socket', async () => {
    let calls = 0;
    upstream.handler = (_req, res) => {
      calls++;
      if (calls === 1) {
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: 'The server had an error while processing your request.' } }));
      } else {
        res.end(JSON.stringify(completion));
      }
    };
    const p = provider();
    const err = await rejection(p.chat(request, opts()));
    expect(err.kind).toBe('http');
    expect(err.status).toBe(500);
    expect(err.upstreamMessage).toBe('The server had an error while processing your request.');
    expect(err.message).toContain('500');
    await socketIdle(p);
    await p.chat(request, opts());
    expect(upstream.connections).toBe(1);
  });

  it('keeps a raw-text error body, truncated', async () => {
    upstream.handler = (_req, res) => {
      res.writeHead(502);
      res.end('bad gateway '.repeat(200));
    };
    const err = await rejection(provider().chat(request, opts()));
    expect(err.status).toBe(502);
    expect(err.upstreamMessage?.startsWith('bad gateway bad gateway')).toBe(true);
    expect(err.upstreamMessage!.length).toBeLessThanOrEqual(500);
  });

  it('maps a 2xx answer that is not JSON to a protocol error', async () => {
    upstream.handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"id": "chatcmpl-1", "choi');
    };
    const err = await rejection(provider().chat(request, opts()));
    expect(err.kind).toBe('protocol');
  });

  it('maps a refused connection to a connection error', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const deadPort = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const err = await rejection(provider({ baseUrl: `http://127.0.0.1:${deadPort}/v1` }).chat(request, opts()));
    expect(err.kind).toBe('connection');
    expect(err.phase).toBe('request');
    expect(err.retryable).toBe(true);
  });

  it('rejects with the UpstreamError the signal was aborted with, and the server sees the request go', async () => {
    const ac = new AbortController();
    const timeout = new UpstreamError('timeout', 'attempt timed out after 50 ms');
    let serverSawClose: Promise<void> | undefined;
    upstream.handler = (_req, res) => {
      serverSawClose = new Promise((resolve) => res.on('close', () => resolve()));
      // never answers: the caller gives up once the server holds the request
      ac.abort(timeout);
    };
    const err = await rejection(provider().chat(request, opts(ac.signal)));
    expect(err).toBe(timeout);
    expect(serverSawClose).toBeDefined();
    await serverSawClose;
  });

  it('rejects with kind aborted for any other abort reason, even before sending', async () => {
    const ac = new AbortController();
    ac.abort();
    const err = await rejection(provider().chat(request, opts(ac.signal)));
    expect(err.kind).toBe('aborted');
    expect(upstream.seen).toHaveLength(0);
  });

  it('posts embeddings to /embeddings with the upstream model', async () => {
    upstream.handler = (_req, res) =>
      res.end(JSON.stringify({ object: 'list', data: [{ object: 'embedding', index: 0, embedding: [0.1, 0.2] }], model: 'emb-up', usage: { prompt_tokens: 1, total_tokens: 1 } }));
    const res = await provider().embed({ model: 'public', input: 'hello' }, { ...opts(), upstreamModel: 'emb-up' });
    expect(res.data[0]?.embedding).toEqual([0.1, 0.2]);
    expect(upstream.seen[0]!.url).toBe('/v1/embeddings');
    expect(upstream.seen[0]!.body).toEqual({ model: 'emb-up', input: 'hello' });
  });
});
