/**
 * The shared HTTP base of the provider adapters: one keep-alive undici Pool per provider instance
 * (one origin), JSON and SSE POST helpers that map every failure to an {@link UpstreamError}, and
 * the abort and socket hygiene the Provider contract asks for. Adapters add only their paths,
 * auth headers and wire translation.
 *
 * Socket rules kept here:
 *  - an error body is read (capped) and the rest dumped, so the socket goes back to the pool;
 *  - a stream read to its terminal event has its tail dumped (socket reused); a stream abandoned
 *    early (consumer return()/break, error, caller abort) is destroyed, which aborts the upstream
 *    request and closes its socket;
 *  - undici's own header/body timeouts are off: timeouts belong to the caller's `signal`.
 */
import { Pool } from 'undici';
import type { Dispatcher } from 'undici';
import type { IncomingHttpHeaders } from 'node:http';
import { RAW_JSON, UpstreamError, serializeRequest } from '../types.js';
import { abortError, httpStatusError, toUpstreamError } from './errors.js';
import { SseParser, type SseEvent } from './sse.js';
import { cancellable } from './cancellable.js';

/** Bytes of a non-2xx body read for its message; the rest is dumped unread. */
const ERROR_BODY_CAP = 16 * 1024;
/** Bytes of a finished stream's tail (after its terminal event) drained to keep the socket. */
const STREAM_TAIL_DUMP_LIMIT = 64 * 1024;

const noop = (): void => {};

export interface HttpClientOptions {
  /** Origin plus an optional path prefix, e.g. `https://api.openai.com/v1`. */
  baseUrl: string;
  /** Sockets kept open to the origin. */
  maxConnections: number;
  /** How long an idle socket is kept when upstream gives no keep-alive hint. */
  keepAliveTimeoutMs: number;
  /** Sent with every request (auth, API version, configured extras). Names are case-insensitive. */
  headers?: Record<string, string>;
}

export interface PostOptions {
  /** Aborts the request; see {@link abortError} for what is thrown then. */
  signal: AbortSignal;
  /** Forwarded as `x-request-id`. */
  requestId?: string | undefined;
}

export interface PostSseOptions extends PostOptions {
  /**
   * The protocol's last event (`[DONE]`, `message_stop`). The stream ends after yielding it; a body
   * that ends before it is a 'protocol' failure.
   */
  isTerminal: (event: SseEvent) => boolean;
}

type Body = Dispatcher.ResponseData['body'];

export class HttpClient {
  private readonly pool: Pool;
  private readonly basePath: string;
  private readonly headers: Record<string, string>;
  private closing: Promise<void> | undefined;

  constructor(opts: HttpClientOptions) {
    const url = new URL(opts.baseUrl);
    this.basePath = url.pathname.replace(/\/+$/, '');
    this.pool = new Pool(url.origin, {
      connections: opts.maxConnections,
      keepAliveTimeout: opts.keepAliveTimeoutMs,
      headersTimeout: 0,
      bodyTimeout: 0,
    });
    this.headers = {};
    for (const [k, v] of Object.entries(opts.headers ?? {})) this.headers[k.toLowerCase()] = v;
  }

  /**
   * POSTs `body` as JSON and resolves with the parsed JSON answer. Uses undici's dispatch handler
   * API rather than `request()`: the answer is collected as Buffers with no Readable stream in
   * between, which profiling showed to be a large share of the gateway's per-request CPU.
   */
  async postJSON<T>(path: string, body: unknown, opts: PostOptions): Promise<T> {
    const { signal } = opts;
    if (signal.aborted) throw abortError(signal);
    const res = await this.exchange(path, serializeRequest(body), this.requestHeaders('application/json', opts.requestId), signal);
    if (res.statusCode < 200 || res.statusCode >= 300) throw httpStatusError(res.statusCode, res.headers, res.text);
    let parsed: unknown;
    try {
      parsed = JSON.parse(res.text);
    } catch (err) {
      throw new UpstreamError('protocol', 'upstream sent invalid JSON', { status: res.statusCode, cause: err });
    }
    // Keep the text, so an answer passed on unchanged is forwarded without serializing it again.
    if (typeof parsed === 'object' && parsed !== null) (parsed as { [RAW_JSON]?: string })[RAW_JSON] = res.text;
    return parsed as T;
  }

  /** One request, its whole answer collected (an error answer's body capped at ERROR_BODY_CAP). */
  private exchange(
    path: string,
    payload: string,
    headers: Record<string, string>,
    signal: AbortSignal,
  ): Promise<{ statusCode: number; headers: IncomingHttpHeaders; text: string }> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let statusCode = 0;
      let resHeaders: IncomingHttpHeaders = {};
      let controller: Dispatcher.DispatchController | undefined;
      let settled = false;
      const onAbort = () => controller?.abort(signal.reason);
      const finish = (err: unknown) => {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', onAbort);
        if (err !== undefined) reject(toUpstreamError(err, signal, 'request'));
        else resolve({ statusCode, headers: resHeaders, text: Buffer.concat(chunks, size).toString('utf8') });
      };
      signal.addEventListener('abort', onAbort, { once: true });
      try {
        this.pool.dispatch(
          { method: 'POST', path: this.basePath + path, headers, body: payload },
          {
            onRequestStart(c) {
              controller = c;
              if (signal.aborted) c.abort(signal.reason);
            },
            onResponseStart(_c, status, h) {
              statusCode = status;
              resHeaders = h;
            },
            onResponseData(_c, chunk) {
              const isError = statusCode < 200 || statusCode >= 300;
              if (isError && size >= ERROR_BODY_CAP) return; // the rest is read and dropped: the socket stays usable
              chunks.push(chunk);
              size += chunk.length;
            },
            onResponseEnd() {
              finish(undefined);
            },
            onResponseError(_c, err) {
              finish(err);
            },
          },
        );
      } catch (err) {
        finish(err);
      }
    });
  }

  private requestHeaders(accept: string, requestId: string | undefined): Record<string, string> {
    const headers: Record<string, string> = { ...this.headers, 'content-type': 'application/json', accept };
    if (requestId !== undefined && requestId !== '') headers['x-request-id'] = requestId;
    return headers;
  }

  /**
   * POSTs `body` as JSON and, once upstream answered 2xx, resolves with its SSE events. Iterate
   * once; stopping early (break / return()) aborts the upstream request. Failures while iterating
   * are UpstreamErrors with `phase: 'stream'`.
   */
  async postSSE(path: string, body: unknown, opts: PostSseOptions): Promise<AsyncIterableIterator<SseEvent>> {
    const res = await this.send(path, body, opts, 'text/event-stream');
    const state = { complete: false };
    const resBody = res.body;
    // Runs once (cancellable guarantees it) when iteration ends for any reason.
    const release = (): void => {
      if (resBody.readableEnded || resBody.destroyed) return;
      if (state.complete) {
        // Only the terminal chunk's tail is left: drain it so the socket is reused.
        resBody.dump({ limit: STREAM_TAIL_DUMP_LIMIT }).catch(noop);
      } else {
        resBody.destroy();
      }
    };
    return cancellable(readEvents(resBody, opts, state), release);
  }

  /** Closes the pool once in-flight requests are done. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.pool.close().catch(noop);
    return this.closing;
  }

  private async send(
    path: string,
    body: unknown,
    opts: PostOptions,
    accept: string,
  ): Promise<Dispatcher.ResponseData> {
    const { signal } = opts;
    if (signal.aborted) throw abortError(signal);
    const headers = this.requestHeaders(accept, opts.requestId);
    const payload = serializeRequest(body); // outside the try: a local failure, not a connection one
    let res: Dispatcher.ResponseData;
    try {
      res = await this.pool.request({
        method: 'POST',
        path: this.basePath + path,
        headers,
        body: payload,
        signal,
      });
    } catch (err) {
      throw toUpstreamError(err, signal, 'request');
    }
    // An abort while nobody reads the body destroys it with an error: never let that be unhandled.
    res.body.on('error', noop);
    if (res.statusCode >= 200 && res.statusCode < 300) return res;
    let text = '';
    try {
      text = await readCapped(res.body, ERROR_BODY_CAP);
    } catch (err) {
      if (signal.aborted) throw abortError(signal);
      // The status is what matters; a broken error body only loses the message.
    }
    throw httpStatusError(res.statusCode, res.headers, text);
  }
}

/** Reads up to `cap` bytes as UTF-8 and dumps the rest (which frees the socket). */
async function readCapped(body: Body, cap: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  const it = body.iterator({ destroyOnReturn: false }) as AsyncIterator<Buffer>;
  for (;;) {
    const r = await it.next();
    if (r.done) break;
    chunks.push(r.value);
    size += r.value.length;
    if (size >= cap) {
      await body.dump().catch(noop);
      break;
    }
  }
  return Buffer.concat(chunks).toString('utf8');
}

async function* readEvents(
  body: Body,
  opts: PostSseOptions,
  state: { complete: boolean },
): AsyncGenerator<SseEvent, void, undefined> {
  const { signal, isTerminal } = opts;
  const parser = new SseParser();
  // destroyOnReturn: false so that finishing at the terminal event does not kill the socket;
  // the release() callback decides between dump and destroy.
  const it = body.iterator({ destroyOnReturn: false }) as AsyncIterator<Buffer>;
  for (;;) {
    let r: IteratorResult<Buffer>;
    try {
      r = await it.next();
    } catch (err) {
      throw toUpstreamError(err, signal, 'stream');
    }
    const events = r.done ? parser.end() : parser.push(r.value);
    for (const ev of events) {
      if (isTerminal(ev)) {
        state.complete = true;
        yield ev;
        return;
      }
      yield ev;
    }
    if (r.done) break;
  }
  if (signal.aborted) throw abortError(signal, 'stream');
  throw new UpstreamError('protocol', 'stream ended before completion', { phase: 'stream' });
}
