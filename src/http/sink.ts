/**
 * The HTTP ResponseSink: JSON through Fastify's reply; SSE straight on the socket (hijacked),
 * with backpressure and HTTP trailers. Detects the client going away so upstream is aborted.
 * A stream's bytes are also shown to `reply.sseTap` when one is set (src/http/idempotency.ts
 * records the transcript of requests sent with an Idempotency-Key).
 */
import { once } from 'node:events';
import type { FastifyReply } from 'fastify';
import { type GatewayError, toOpenAIErrorBody } from '../errors.js';
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

/**
 * The SSE answers open on a server, for its shutdown: while one is under way a stream closes its
 * connection when it ends (no keep-alive socket holds the process), and at the grace deadline the
 * streams still open are cut with an in-band error event (src/capabilities/api.ts, cutStreams).
 */
export class OpenStreams {
  private readonly cuts = new Set<(reason: GatewayError) => Promise<void>>();

  constructor(readonly shuttingDown: () => boolean = () => false) {}

  get size(): number {
    return this.cuts.size;
  }

  /** Registers a stream's cut; returns its removal. */
  add(cut: (reason: GatewayError) => Promise<void>): () => void {
    this.cuts.add(cut);
    return () => this.cuts.delete(cut);
  }

  /** Ends every open stream with `reason` as its last event; resolves once each is handed to its socket. */
  async cutAll(reason: GatewayError): Promise<void> {
    await Promise.all([...this.cuts].map((cut) => cut(reason)));
  }
}

export class HttpSink implements ResponseSink {
  private readonly controller = new AbortController();
  private sent = false;

  constructor(
    private readonly reply: FastifyReply,
    private readonly streams?: OpenStreams,
  ) {
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
    const streams = this.streams;
    const closing = streams?.shuttingDown() === true;
    const head = {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      'x-accel-buffering': 'no',
      ...(trailerNames.length ? { trailer: trailerNames.join(', ') } : {}),
      ...(closing ? { connection: 'close' } : {}),
      ...headers,
    };
    res.writeHead(200, head);
    tap?.open(head);
    // A stream that began before a shutdown announced keep-alive: its socket is closed once it ends.
    const closeIfShuttingDown = () => {
      const socket = res.socket;
      if (!closing && streams?.shuttingDown() && socket) res.once('finish', () => socket.end());
    };
    if (streams) {
      // Cut at the shutdown's grace deadline: the error event goes out, then the end (no [DONE], so
      // the client knows the answer is incomplete), then the pipeline sees its signal aborted with
      // `reason` (not a client that left: see respond.ts).
      const controller = this.controller;
      const remove = streams.add((reason) => {
        if (res.destroyed || res.writableEnded) return Promise.resolve();
        const event = `data: ${JSON.stringify(toOpenAIErrorBody(reason))}\n\n`;
        tap?.write(event);
        tap?.end(undefined);
        const handedOver = new Promise<void>((resolve) => {
          res.once('finish', resolve);
          res.once('close', resolve);
        });
        res.write(event);
        closeIfShuttingDown();
        res.end();
        controller.abort(reason);
        // A client that stopped reading cannot take the event: its socket is not waited for.
        return res.writableNeedDrain ? Promise.resolve() : handedOver;
      });
      res.once('close', remove);
    }
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
        closeIfShuttingDown();
        res.end();
      },
    };
  }
}
