/**
 * A fake upstream for the HTTP provider adapters' tests: a node:http server on 127.0.0.1 (port 0)
 * that records every request (method, URL, headers, JSON body) and answers with the test's
 * `handler`, plus the helpers those tests share (collecting a stream, awaiting an UpstreamError,
 * an SSE response head, waiting for an adapter's socket to be idle).
 *
 *   const upstream = useFakeUpstream(); // starts before the file's tests, resets after each
 *   upstream.handler = (_req, res) => res.end(JSON.stringify(answer));
 *   const p = upstream.track(new OpenAICompatibleProvider('test', { ...cfg, baseUrl: upstream.url }));
 *   ... expect(upstream.seen[0]!.url).toBe('/v1/chat/completions');
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Pool } from 'undici';
import { afterAll, afterEach, beforeAll, expect, vi } from 'vitest';
import { UpstreamError, type ChatCompletionChunk } from '../../src/providers/types.js';

export interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: Record<string, unknown>;
}

export type Handler = (req: IncomingMessage, res: ServerResponse, seen: Seen) => void;

export interface FakeUpstream {
  /** The server's port (known once the file's tests start). */
  port: number;
  /** `http://127.0.0.1:<port>`. */
  readonly url: string;
  /** Answers each request; set by each test. */
  handler: Handler;
  /** Requests received during the current test. */
  seen: Seen[];
  /** Connections opened during the current test. */
  connections: number;
  /** Closes `closable` after the current test. */
  track<T extends { close(): Promise<void> }>(closable: T): T;
}

/** A fake upstream started before the calling file's tests, reset after each test, closed after all. */
export function useFakeUpstream(): FakeUpstream {
  let server: Server;
  const tracked: Array<{ close(): Promise<void> }> = [];
  const upstream: FakeUpstream = {
    port: 0,
    get url() {
      return `http://127.0.0.1:${this.port}`;
    },
    handler: (_req, res) => res.end(),
    seen: [],
    connections: 0,
    track(closable) {
      tracked.push(closable);
      return closable;
    },
  };

  beforeAll(async () => {
    server = createServer((req, res) => {
      const parts: Buffer[] = [];
      req.on('data', (c: Buffer) => parts.push(c));
      req.on('end', () => {
        const text = Buffer.concat(parts).toString('utf8');
        const s: Seen = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: text ? JSON.parse(text) : {} };
        upstream.seen.push(s);
        upstream.handler(req, res, s);
      });
    });
    server.on('connection', () => upstream.connections++);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    upstream.port = (server.address() as AddressInfo).port;
  });

  afterEach(async () => {
    await Promise.all(tracked.splice(0).map((p) => p.close()));
    upstream.seen = [];
    upstream.connections = 0;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  return upstream;
}

/** Writes the head of an SSE answer. */
export function sseHead(res: ServerResponse): void {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
}

export async function collect(stream: AsyncIterable<ChatCompletionChunk>): Promise<ChatCompletionChunk[]> {
  const out: ChatCompletionChunk[] = [];
  for await (const c of stream) out.push(c);
  return out;
}

/** The UpstreamError `p` rejects with (the test fails when it resolves or rejects with anything else). */
export async function rejection(p: Promise<unknown>): Promise<UpstreamError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(UpstreamError);
    return err as UpstreamError;
  }
  throw new Error('expected a rejection');
}

/**
 * Waits until an HTTP adapter's pool holds exactly one connected socket and it is idle (undici
 * marks a finished socket idle a tick after the body ends): the next request can then only reuse
 * it. A socket that was closed instead never gets there, and the wait fails.
 */
export async function socketIdle(provider: object): Promise<void> {
  const pool = (provider as { http: { pool: Pool } }).http.pool;
  await vi.waitFor(() => expect({ connected: pool.stats.connected, free: pool.stats.free }).toEqual({ connected: 1, free: 1 }), {
    timeout: 10_000,
    interval: 5,
  });
}
