/**
 * A webhook receiver for tests: a node:http server on 127.0.0.1 (port 0) that verifies each
 * delivery's signature like a real receiver would (verifyWebhook over the raw body), keeps every
 * delivery, and keeps a dedupe log by `webhook-id` (`unique`: the first delivery of each id it
 * processed, so redeliveries of an id already processed are not counted twice).
 *
 * Answers: 401 for a bad signature; else the next scripted failure (`failNext`); else the
 * handler's reply (`handle`); else 200.
 *
 *   const rx = await startWebhookReceiver({ secret: tenantWebhookSecret(master, 'acme') });
 *   rx.failNext(2, 503);
 *   ... await rx.waitFor(3); expect(rx.unique.size).toBe(1);
 *   await rx.close();
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { verifyWebhook } from '../../src/observability/webhook.js';

export interface ReceivedWebhook {
  /** `webhook-id` header ('' when missing). */
  webhookId: string;
  /** `x-tollgate-event` header. */
  event: string;
  headers: IncomingHttpHeaders;
  rawBody: string;
  /** The parsed JSON body (undefined when it was not JSON). */
  body: any;
  signatureValid: boolean;
  /** The status this receiver answered. */
  status: number;
  /** Epoch ms when it arrived. */
  at: number;
}

export interface ReceiverReply {
  status: number;
  headers?: Record<string, string>;
  body?: string;
  /** Waits this long before answering (timeouts, in-flight deliveries). */
  delayMs?: number;
}

/** Decides the answer to a (correctly signed) delivery; undefined = 200. */
export type ReceiverHandler = (delivery: ReceivedWebhook) => ReceiverReply | undefined | Promise<ReceiverReply | undefined>;

export interface WebhookReceiver {
  /** `http://127.0.0.1:<port>/hook` */
  url: string;
  port: number;
  /** Every request, in arrival order. */
  deliveries: ReceivedWebhook[];
  /** Dedupe log: webhook-id -> the first delivery with that id answered 2xx with a valid signature. */
  unique: Map<string, ReceivedWebhook>;
  /** Answers the next `n` deliveries with `status` (and headers, e.g. Retry-After). */
  failNext(n: number, status?: number, headers?: Record<string, string>): void;
  /** Sets (or, with no argument, clears) the handler of deliveries not scripted by failNext. */
  handle(handler?: ReceiverHandler): void;
  /** Resolves once `count` requests have arrived (and been answered), or rejects after `timeoutMs`. */
  waitFor(count: number, timeoutMs?: number): Promise<ReceivedWebhook[]>;
  close(): Promise<void>;
}

export async function startWebhookReceiver(opts: { secret: string; path?: string; toleranceSec?: number }): Promise<WebhookReceiver> {
  const path = opts.path ?? '/hook';
  const deliveries: ReceivedWebhook[] = [];
  const unique = new Map<string, ReceivedWebhook>();
  const failures: Array<{ status: number; headers: Record<string, string> }> = [];
  const waiters = new Set<() => void>();
  const sockets = new Set<Socket>();
  let handler: ReceiverHandler | undefined;

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const rawBody = Buffer.concat(chunks).toString('utf8');
        const header = (name: string): string | undefined => {
          const v = req.headers[name];
          return Array.isArray(v) ? v[0] : v;
        };
        let body: unknown;
        try {
          body = JSON.parse(rawBody);
        } catch {
          body = undefined;
        }
        const signatureValid = verifyWebhook(
          opts.secret,
          { timestamp: header('x-tollgate-timestamp'), signature: header('x-tollgate-signature') },
          rawBody,
          opts.toleranceSec ?? 300,
        );
        const delivery: ReceivedWebhook = {
          webhookId: header('webhook-id') ?? '',
          event: header('x-tollgate-event') ?? '',
          headers: req.headers,
          rawBody,
          body,
          signatureValid,
          status: 200,
          at: Date.now(),
        };
        let reply: ReceiverReply | undefined;
        if (req.method !== 'POST' || req.url !== path) reply = { status: 404 };
        else if (!signatureValid) reply = { status: 401, body: 'bad signature' };
        else if (failures.length > 0) reply = failures.shift();
        else if (handler) {
          try {
            reply = await handler(delivery);
          } catch {
            reply = { status: 500 };
          }
        }
        reply ??= { status: 200 };
        if (reply.delayMs) await new Promise((r) => setTimeout(r, reply.delayMs));
        delivery.status = reply.status;
        if (reply.status >= 200 && reply.status < 300 && signatureValid && !unique.has(delivery.webhookId)) {
          unique.set(delivery.webhookId, delivery);
        }
        deliveries.push(delivery);
        if (!res.destroyed) {
          res.writeHead(reply.status, { 'content-type': 'text/plain', ...reply.headers });
          res.end(reply.body ?? '');
        }
        for (const w of [...waiters]) w();
      })();
    });
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}${path}`,
    port,
    deliveries,
    unique,
    failNext(n, status = 500, headers = {}) {
      for (let i = 0; i < n; i++) failures.push({ status, headers });
    },
    handle(h) {
      handler = h;
    },
    waitFor(count, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (deliveries.length >= count) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve(deliveries);
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`webhook receiver: ${deliveries.length} of ${count} deliveries after ${timeoutMs} ms`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
