/**
 * The HTTP ResponseSink: JSON through Fastify's reply; SSE straight on the socket (hijacked),
 * with backpressure and HTTP trailers. Detects the client going away so upstream is aborted.
 * A stream's bytes are also shown to `reply.sseTap` when one is set (src/http/idempotency.ts
 * records the transcript of requests sent with an Idempotency-Key).
 */
import { once } from 'node:events';
import type { FastifyReply } from 'fastify';
import { UpstreamError, toJsonText } from '../providers/types.js';
import type { ResponseSink, SseWriter } from '../pipeline/context.js';

/** Sees a stream as it is written: its head, each event's bytes, its end. */
export interface SseTap {
  open(headers: Record<string, string>): void;
  write(event: string): void;
  end(trailers: Record<string, string> | undefined): void;
}

declare module 'fastify' {
  interface FastifyReply {
    /** Set by src/http/idempotency.ts on the requests whose answer it records; null otherwise. */
    sseTap?: SseTap | null;
  }
}

export class HttpSink implements ResponseSink {
  private readonly controller = new AbortController();
  private sent = false;

  constructor(private readonly reply: FastifyReply) {
    const res = reply.raw;
    res.once('close', () => {
      if (!res.writableFinished) this.controller.abort(new UpstreamError('aborted', 'client closed the connection'));
    });
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  get committed(): boolean {
    return this.sent;
  }

  sendJson(status: number, headers: Record<string, string>, body: object): void {
    this.sent = true;
    void this.reply.code(status).headers(headers).type('application/json; charset=utf-8').send(toJsonText(body));
  }

  openStream(headers: Record<string, string>, trailerNames: string[] = []): SseWriter {
    this.sent = true;
    this.reply.hijack();
    const res = this.reply.raw;
    const tap = this.reply.sseTap;
    const head = {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      'x-accel-buffering': 'no',
      ...(trailerNames.length ? { trailer: trailerNames.join(', ') } : {}),
      ...headers,
    };
    res.writeHead(200, head);
    tap?.open(head);
    // Events that arrive together (one upstream read often holds many) go out in one write:
    // cork on the first event of a tick, uncork on the next tick.
    let corked = false;
    const uncork = () => {
      corked = false;
      res.uncork();
    };
    return {
      async send(data: string): Promise<void> {
        if (res.destroyed || res.writableEnded) return;
        if (!corked) {
          corked = true;
          res.cork();
          process.nextTick(uncork);
        }
        const event = `data: ${data}\n\n`;
        tap?.write(event);
        if (!res.write(event)) {
          await Promise.race([once(res, 'drain'), once(res, 'close')]);
        }
      },
      end(trailers?: Record<string, string>): void {
        if (res.destroyed || res.writableEnded) return;
        if (trailers) res.addTrailers(trailers);
        tap?.end(trailers);
        res.end();
      },
    };
  }
}
