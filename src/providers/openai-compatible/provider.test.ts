import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Pool } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { OpenAICompatibleProviderConfig } from '../../config/schema.js';
import { UpstreamError, type ChatCompletionChunk, type ChatCompletionRequest } from '../types.js';
import { OpenAICompatibleProvider } from './provider.js';

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: Record<string, unknown>;
}
type Handler = (req: IncomingMessage, res: ServerResponse, seen: Seen) => void;

let server: Server;
let port: number;
let handler: Handler;
let seen: Seen[] = [];
let connections = 0;
const providers: OpenAICompatibleProvider[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      const text = Buffer.concat(parts).toString('utf8');
      const s: Seen = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: text ? JSON.parse(text) : {} };
      seen.push(s);
      handler(req, res, s);
    });
  });
  server.on('connection', () => connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

afterEach(async () => {
  await Promise.all(providers.splice(0).map((p) => p.close()));
  seen = [];
  connections = 0;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

function provider(cfg: Partial<OpenAICompatibleProviderConfig> = {}): OpenAICompatibleProvider {
  const p = new OpenAICompatibleProvider('test', {
    kind: 'openai-compatible',
    baseUrl: `http://127.0.0.1:${port}/v1`,
    apiKey: 'sk-test',
    headers: {},
    maxConnections: 4,
    keepAliveTimeoutMs: 10_000,
    ...cfg,
  });
  providers.push(p);
  return p;
}

const request: ChatCompletionRequest = {
  model: 'public-name',
  messages: [{ role: 'user', content: 'hi' }],
  max_tokens: 16,
};

const opts = (signal: AbortSignal = new AbortController().signal) => ({ signal, upstreamModel: 'gpt-up', requestId: 'req-123' });

const completion = {
  id: 'chatcmpl-1',
  object: 'chat.completion',
  created: 1,
  model: 'gpt-up',
  choices: [{ index: 0, message: { role: 'assistant', content: 'hello' }, finish_reason: 'stop' }],
  usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 },
};

function chunk(content: string | null, finish: string | null = null, usage?: unknown): ChatCompletionChunk {
  return {
    id: 'chatcmpl-1',
    object: 'chat.completion.chunk',
    created: 1,
    model: 'gpt-up',
    choices: usage ? [] : [{ index: 0, delta: content === null ? {} : { content }, finish_reason: finish as null }],
    ...(usage ? { usage: usage as ChatCompletionChunk['usage'] } : {}),
  };
}

function sseHead(res: ServerResponse): void {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
}

async function collect(stream: AsyncIterable<ChatCompletionChunk>): Promise<ChatCompletionChunk[]> {
  const out: ChatCompletionChunk[] = [];
  for await (const c of stream) out.push(c);
  return out;
}

/**
 * Waits until the provider's pool holds exactly one connected socket and it is idle (undici marks
 * a finished socket idle a tick after the body ends): the next request can then only reuse it. A
 * socket that was closed instead never gets there, and the wait fails.
 */
async function socketIdle(p: OpenAICompatibleProvider): Promise<void> {
  const pool = (p as unknown as { http: { pool: Pool } }).http.pool;
  await vi.waitFor(() => expect({ connected: pool.stats.connected, free: pool.stats.free }).toEqual({ connected: 1, free: 1 }), {
    timeout: 10_000,
    interval: 5,
  });
}

async function rejection(p: Promise<unknown>): Promise<UpstreamError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(UpstreamError);
    return err as UpstreamError;
  }
  throw new Error('expected a rejection');
}

describe('OpenAICompatibleProvider.chat', () => {
  it('posts the request with the upstream model, auth, extra headers and request id', async () => {
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(completion));
    };
    const p = provider({ headers: { 'OpenAI-Organization': 'org-1' } });
    const res = await p.chat({ ...request, stream: true, stream_options: { include_usage: true } }, opts());
    expect(res.choices[0]?.message.content).toBe('hello');
    expect(res.usage?.total_tokens).toBe(4);
    const s = seen[0]!;
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
    handler = (_req, res) => res.end(JSON.stringify(completion));
    await provider({ apiKey: undefined }).chat(request, opts());
    expect(seen[0]!.headers).not.toHaveProperty('authorization');
  });

  it('maps 429 with Retry-After to an http error with retryAfterMs', async () => {
    handler = (_req, res) => {
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
    handler = (_req, res) => {
      res.writeHead(429, { 'retry-after': '7', 'retry-after-ms': '1500' });
      res.end();
    };
    const err = await rejection(provider().chat(request, opts()));
    expect(err.retryAfterMs).toBe(1500);
    expect(err.upstreamMessage).toBeUndefined();
  });

  it('carries a 500 body message, consumes it and reuses the socket', async () => {
    let calls = 0;
    handler = (_req, res) => {
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
    expect(connections).toBe(1);
  });

  it('keeps a raw-text error body, truncated', async () => {
    handler = (_req, res) => {
      res.writeHead(502);
      res.end('bad gateway '.repeat(200));
    };
    const err = await rejection(provider().chat(request, opts()));
    expect(err.status).toBe(502);
    expect(err.upstreamMessage?.startsWith('bad gateway bad gateway')).toBe(true);
    expect(err.upstreamMessage!.length).toBeLessThanOrEqual(500);
  });

  it('maps a 2xx answer that is not JSON to a protocol error', async () => {
    handler = (_req, res) => {
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
    handler = (_req, res) => {
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
    expect(seen).toHaveLength(0);
  });

  it('posts embeddings to /embeddings with the upstream model', async () => {
    handler = (_req, res) =>
      res.end(JSON.stringify({ object: 'list', data: [{ object: 'embedding', index: 0, embedding: [0.1, 0.2] }], model: 'emb-up', usage: { prompt_tokens: 1, total_tokens: 1 } }));
    const res = await provider().embed({ model: 'public', input: 'hello' }, { ...opts(), upstreamModel: 'emb-up' });
    expect(res.data[0]?.embedding).toEqual([0.1, 0.2]);
    expect(seen[0]!.url).toBe('/v1/embeddings');
    expect(seen[0]!.body).toEqual({ model: 'emb-up', input: 'hello' });
  });
});

describe('OpenAICompatibleProvider.chatStream', () => {
  it('yields parsed chunks until [DONE] and always asks for usage', async () => {
    const usage = { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 };
    handler = (_req, res) => {
      sseHead(res);
      res.write(`data: ${JSON.stringify(chunk('Hel'))}\n\n`);
      // one event split across writes
      const second = `data: ${JSON.stringify(chunk('lo'))}\n\n`;
      res.write(second.slice(0, 10));
      setTimeout(() => {
        res.write(second.slice(10));
        res.write(`: keep-alive comment\n\ndata: ${JSON.stringify(chunk(null, 'stop'))}\n\n`);
        res.write(`data: ${JSON.stringify(chunk(null, null, usage))}\n\n`);
        res.end('data: [DONE]\n\n');
      }, 10);
    };
    const p = provider();
    const stream = await p.chatStream({ ...request, stream_options: { include_usage: false } }, opts());
    const chunks = await collect(stream);
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? null)).toEqual(['Hel', 'lo', null, null]);
    expect(chunks[2]?.choices[0]?.finish_reason).toBe('stop');
    expect(chunks[3]?.usage).toEqual(usage);
    const s = seen[0]!;
    expect(s.body.stream).toBe(true);
    expect(s.body.stream_options).toEqual({ include_usage: true });
    expect(s.body.model).toBe('gpt-up');
    expect(s.headers.accept).toBe('text/event-stream');
    expect(s.headers['x-request-id']).toBe('req-123');
  });

  it('reuses the socket after a stream that reached [DONE], even if upstream ends the response later', async () => {
    const open: ServerResponse[] = [];
    handler = (_req, res) => {
      sseHead(res);
      res.write(`data: ${JSON.stringify(chunk('a'))}\n\n`);
      res.write('data: [DONE]\n\n');
      open.push(res); // ended by the test, once the consumer is done
    };
    const p = provider();
    await collect(await p.chatStream(request, opts()));
    expect(open[0]!.writableEnded).toBe(false); // the consumer finished before upstream ended the response
    open[0]!.end();
    await socketIdle(p);
    handler = (_req, res) => {
      sseHead(res);
      res.end('data: [DONE]\n\n');
    };
    await collect(await p.chatStream(request, opts()));
    expect(seen).toHaveLength(2);
    expect(connections).toBe(1);
  });

  it('throws a stream-phase protocol error when the body ends before [DONE]', async () => {
    handler = (_req, res) => {
      sseHead(res);
      res.write(`data: ${JSON.stringify(chunk('partial'))}\n\n`);
      setTimeout(() => res.end(), 10);
    };
    const stream = await provider().chatStream(request, opts());
    const got: ChatCompletionChunk[] = [];
    const err = await rejection(
      (async () => {
        for await (const c of stream) got.push(c);
      })(),
    );
    expect(got).toHaveLength(1);
    expect(err.kind).toBe('protocol');
    expect(err.phase).toBe('stream');
    expect(err.message).toBe('stream ended before completion');
  });

  it('throws a stream-phase connection error when the socket dies mid-stream', async () => {
    let socket: IncomingMessage['socket'] | undefined;
    handler = (req, res) => {
      sseHead(res);
      res.write(`data: ${JSON.stringify(chunk('partial'))}\n\n`);
      socket = req.socket;
    };
    const stream = (await provider().chatStream(request, opts()))[Symbol.asyncIterator]();
    const first = await stream.next();
    expect(first.done ? undefined : first.value.choices[0]?.delta.content).toBe('partial');
    socket!.destroy(); // after the first chunk arrived: mid-stream
    const err = await rejection(stream.next());
    expect(err.kind).toBe('connection');
    expect(err.phase).toBe('stream');
  });

  it('throws a stream-phase http error for an in-band error event', async () => {
    handler = (_req, res) => {
      sseHead(res);
      res.write(`data: ${JSON.stringify(chunk('x'))}\n\n`);
      res.end(`data: ${JSON.stringify({ error: { message: 'model overloaded', code: 503 } })}\n\n`);
    };
    const err = await rejection(collect(await provider().chatStream(request, opts())));
    expect(err.kind).toBe('http');
    expect(err.status).toBe(503);
    expect(err.phase).toBe('stream');
    expect(err.upstreamMessage).toBe('model overloaded');
  });

  it('throws a stream-phase protocol error for a chunk that is not JSON', async () => {
    handler = (_req, res) => {
      sseHead(res);
      res.end('data: {not json\n\ndata: [DONE]\n\n');
    };
    const err = await rejection(collect(await provider().chatStream(request, opts())));
    expect(err.kind).toBe('protocol');
    expect(err.phase).toBe('stream');
  });

  it('rejects before any chunk when upstream answers non-2xx', async () => {
    handler = (_req, res) => {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: 'Incorrect API key provided' } }));
    };
    const err = await rejection(provider().chatStream(request, opts()));
    expect(err.kind).toBe('http');
    expect(err.status).toBe(401);
    expect(err.phase).toBe('request');
    expect(err.retryable).toBe(false);
  });

  it('aborts the upstream request when the consumer breaks out of the loop', async () => {
    let serverSawClose!: Promise<boolean>;
    handler = (_req, res) => {
      sseHead(res);
      let i = 0;
      const timer = setInterval(() => res.write(`data: ${JSON.stringify(chunk(`t${i++}`))}\n\n`), 5);
      serverSawClose = new Promise((resolve) =>
        res.on('close', () => {
          clearInterval(timer);
          resolve(res.writableEnded);
        }),
      );
    };
    const stream = await provider().chatStream(request, opts());
    const got: string[] = [];
    for await (const c of stream) {
      got.push(c.choices[0]?.delta.content ?? '');
      if (got.length === 2) break;
    }
    expect(got).toEqual(['t0', 't1']);
    // The response was never ended by the server: its close can only come from the client hanging up.
    const endedByServer = await serverSawClose;
    expect(endedByServer).toBe(false);
  });

  it('aborts upstream when return() is called before the first chunk is read', async () => {
    let serverSawClose!: Promise<void>;
    handler = (_req, res) => {
      sseHead(res);
      res.write(': open\n\n');
      serverSawClose = new Promise((resolve) => res.on('close', () => resolve()));
    };
    const stream = await provider().chatStream(request, opts());
    await stream[Symbol.asyncIterator]().return?.();
    await serverSawClose;
  });

  it('throws the UpstreamError abort reason from the iterator mid-stream', async () => {
    handler = (_req, res) => {
      sseHead(res);
      res.write(`data: ${JSON.stringify(chunk('first'))}\n\n`);
    };
    const ac = new AbortController();
    const idle = new UpstreamError('timeout', 'stream idle for 50 ms', { phase: 'stream' });
    const stream = await provider().chatStream(request, opts(ac.signal));
    const got: ChatCompletionChunk[] = [];
    const err = await rejection(
      (async () => {
        for await (const c of stream) {
          got.push(c);
          setTimeout(() => ac.abort(idle), 20);
        }
      })(),
    );
    expect(got).toHaveLength(1);
    expect(err).toBe(idle);
  });

  it('uses the Azure deployment path, api-version and api-key header', async () => {
    handler = (_req, res) => {
      sseHead(res);
      res.end('data: [DONE]\n\n');
    };
    const p = provider({ baseUrl: `http://127.0.0.1:${port}`, azure: { apiVersion: '2024-10-21' }, apiKey: 'azure-key' });
    expect(await collect(await p.chatStream(request, { ...opts(), upstreamModel: 'my-gpt4o' }))).toEqual([]);
    const s = seen[0]!;
    expect(s.url).toBe('/openai/deployments/my-gpt4o/chat/completions?api-version=2024-10-21');
    expect(s.headers['api-key']).toBe('azure-key');
    expect(s.headers).not.toHaveProperty('authorization');
    expect(s.body.stream_options).toEqual({ include_usage: true });
  });
});
