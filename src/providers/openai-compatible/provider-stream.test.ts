/**
 * OpenAICompatibleProvider against a fake upstream: streamed chat completions, from the request
 * flags to the end of the stream, socket reuse, failures mid-stream and the consumer stopping
 * early; and Azure's deployment paths.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { describe, expect, it } from 'vitest';
// @ts-ignore TS6059: test helpers live outside tsconfig's rootDir (src); the import is type-checked all the same.
import { collect, rejection, socketIdle, sseHead, useFakeUpstream } from '../../../test/helpers/fake-upstream.js';
import { UpstreamError, type ChatCompletionChunk } from '../types.js';
// @ts-ignore TS6059: test helpers live outside tsconfig's rootDir (src); the import is type-checked all the same.
import { chunk, openAIProvider, opts, request } from '../../../test/helpers/openai-provider.js';

const upstream = useFakeUpstream();
const provider = openAIProvider(upstream);

describe('OpenAICompatibleProvider.chatStream', () => {
  it('yields parsed chunks until [DONE] and always asks for usage', async () => {
    const usage = { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 };
    upstream.handler = (_req, res) => {
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
    const s = upstream.seen[0]!;
    expect(s.body.stream).toBe(true);
    expect(s.body.stream_options).toEqual({ include_usage: true });
    expect(s.body.model).toBe('gpt-up');
    expect(s.headers.accept).toBe('text/event-stream');
    expect(s.headers['x-request-id']).toBe('req-123');
  });

  it('reuses the socket after a stream that reached [DONE], even if upstream ends the response later', async () => {
    const open: ServerResponse[] = [];
    upstream.handler = (_req, res) => {
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
    upstream.handler = (_req, res) => {
      sseHead(res);
      res.end('data: [DONE]\n\n');
    };
    await collect(await p.chatStream(request, opts()));
    expect(upstream.seen).toHaveLength(2);
    expect(upstream.connections).toBe(1);
  });

  it('throws a stream-phase protocol error when the body ends before [DONE]', async () => {
    upstream.handler = (_req, res) => {
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
    upstream.handler = (req, res) => {
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
    upstream.handler = (_req, res) => {
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
    upstream.handler = (_req, res) => {
      sseHead(res);
      res.end('data: {not json\n\ndata: [DONE]\n\n');
    };
    const err = await rejection(collect(await provider().chatStream(request, opts())));
    expect(err.kind).toBe('protocol');
    expect(err.phase).toBe('stream');
  });

  it('rejects before any chunk when upstream answers non-2xx', async () => {
    upstream.handler = (_req, res) => {
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
    upstream.handler = (_req, res) => {
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
    upstream.handler = (_req, res) => {
      sseHead(res);
      res.write(': open\n\n');
      serverSawClose = new Promise((resolve) => res.on('close', () => resolve()));
    };
    const stream = await provider().chatStream(request, opts());
    await stream[Symbol.asyncIterator]().return?.();
    await serverSawClose;
  });

  it('throws the UpstreamError abort reason from the iterator mid-stream', async () => {
    upstream.handler = (_req, res) => {
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
    upstream.handler = (_req, res) => {
      sseHead(res);
      res.end('data: [DONE]\n\n');
    };
    const p = provider({ baseUrl: upstream.url, azure: { apiVersion: '2024-10-21' }, apiKey: 'azure-key' });
    expect(await collect(await p.chatStream(request, { ...opts(), upstreamModel: 'my-gpt4o' }))).toEqual([]);
    const s = upstream.seen[0]!;
    expect(s.url).toBe('/openai/deployments/my-gpt4o/chat/completions?api-version=2024-10-21');
    expect(s.headers['api-key']).toBe('azure-key');
    expect(s.headers).not.toHaveProperty('authorization');
    expect(s.body.stream_options).toEqual({ include_usage: true });
  });
});
