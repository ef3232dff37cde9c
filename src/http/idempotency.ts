/**
 * `Idempotency-Key` on every POST route (docs/API.md): the first request with a key runs; the
 * same key with the same method, path and body bytes, within `ttlMs`, gets the first answer
 * replayed (status, body, content-type, x-request-id, x-tollgate-*; plus
 * `x-tollgate-idempotent-replay: true`) without reaching the pipeline, so it is never billed twice.
 * Keys are scoped by the sha256 of the caller's credential, so this layer needs no auth lookup
 * and two callers never share a key.
 *
 * Per POST route (hooks added in onRoute, so other routes carry nothing; a POST without the header
 * costs one header read per hook):
 *   onRequest      validate the header (400), take the scope, start the body hash
 *   preParsing     the body's bytes pass through the hash on their way to the JSON parser
 *   preValidation  store.begin: new -> run it and record; done -> replay;
 *                  running -> 409 idempotency_key_in_progress; other body -> 422 idempotency_key_reused
 *   onSend         a JSON answer: stored before it is sent when final, else the key is released
 *   reply.sseTap   a stream (hijacked, see sink.ts): its transcript as written, stored when it ended
 *                  with [DONE]; a stream that failed or was cut off releases the key
 *   'close'        whatever is still open when the connection closes (client gone) is released
 * Final answers: 2xx, and 4xx except 401/403/408/409/429. Anything else releases the key so a
 * retry runs. A route whose answer must never be stored (a secret shown once) sets
 * `config: { idempotency: false }` and refuses the header.
 */
import { type Hash, createHash } from 'node:crypto';
import { Transform, pipeline } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import { extractKey, hashKey } from '../auth/keys.js';
import { GatewayError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { IdempotencyStore, StoredResponse } from '../storage/types.js';
import type { SseTap } from './sink.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** false: the route refuses Idempotency-Key (its answer must never be stored). */
    idempotency?: boolean;
  }
}

export interface IdempotencyOptions {
  store: IdempotencyStore;
  /** How long a final answer is replayed, from the first request (config `idempotency.ttlMs`). */
  ttlMs: number;
  /** How long a request in flight holds its key if its process dies (config `idempotency.leaseMs`). */
  leaseMs: number;
  log: Logger;
  /** How often expired keys are deleted (default 10 minutes; 0: never). Expiry itself is checked on every read. */
  purgeIntervalMs?: number;
}

const HEADER = 'idempotency-key';
const MAX_KEY_LENGTH = 255;
const PRINTABLE = /^[\x20-\x7e]+$/;
const REPLAY_HEADER = 'x-tollgate-idempotent-replay';
const DONE_EVENT = 'data: [DONE]\n\n';
/** Answers that a retry may change (auth fixed, budget raised, limit reset): never stored. */
const RETRYABLE_4XX = new Set([401, 402, 403, 408, 409, 429]);
const PURGE_BATCH = 1_000;

interface Claim {
  scope: string;
  key: string;
  hash: Hash;
  /** Set between a 'new' begin and the moment the answer is stored or the key released. */
  owned: boolean;
}

type Done = (err?: Error | null) => void;

export function isFinalStatus(status: number): boolean {
  return (status >= 200 && status < 300) || (status >= 400 && status < 500 && !RETRYABLE_4XX.has(status));
}

/** Installs the hooks on `app` (the root instance, before the routes are registered). */
export function idempotency(app: FastifyInstance, opts: IdempotencyOptions): void {
  const { store, ttlMs, leaseMs, log } = opts;
  const claims = new WeakMap<FastifyRequest, Claim>();
  const settling = new Set<Promise<void>>();

  app.decorateReply('sseTap', null);

  function track(work: Promise<void>): Promise<void> {
    settling.add(work);
    void work.finally(() => settling.delete(work));
    return work;
  }

  /** Stores the answer, or releases the key when there is none to store. Never rejects. */
  function settle(claim: Claim, response: StoredResponse | undefined): Promise<void> {
    claim.owned = false;
    return track(
      (async () => {
        try {
          if (response) await store.complete(claim.scope, claim.key, response);
          else await store.release(claim.scope, claim.key);
        } catch (err) {
          log.error({ err }, response ? 'could not store an idempotent answer' : 'could not release an idempotency key');
          if (response) await store.release(claim.scope, claim.key).catch(() => undefined);
        }
      })(),
    );
  }

  function onRequest(request: FastifyRequest, _reply: FastifyReply, done: Done): void {
    const header = request.headers[HEADER];
    if (header === undefined || request.method !== 'POST') return done();
    const key = validKey(header);
    if (key instanceof GatewayError) return done(key);
    const credential = extractKey(request.headers);
    if (credential === undefined) return done(); // answered 401: nothing to scope by, nothing stored
    const hash = createHash('sha256').update(`${request.method} ${request.url}\n`);
    claims.set(request, { scope: hashKey(credential), key, hash, owned: false });
    done();
  }

  function preParsing(request: FastifyRequest, _reply: FastifyReply, payload: NodeJS.ReadableStream, done: (err: Error | null, body?: NodeJS.ReadableStream) => void): void {
    const claim = claims.get(request);
    if (!claim) return done(null, payload);
    const hashing = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        claim.hash.update(chunk);
        callback(null, chunk);
      },
    });
    pipeline(payload, hashing, () => undefined); // an error reaches the parser through `hashing`
    done(null, hashing);
  }

  function preValidation(request: FastifyRequest, reply: FastifyReply, done: Done): void {
    const claim = claims.get(request);
    if (!claim) return done();
    store.begin(claim.scope, claim.key, claim.hash.digest('hex'), ttlMs, leaseMs).then((begun) => {
      switch (begun.state) {
        case 'new':
          claim.owned = true;
          reply.sseTap = streamRecorder(claim);
          reply.raw.once('close', () => {
            if (claim.owned) void settle(claim, undefined);
          });
          return done();
        case 'done':
          claims.delete(request);
          replay(request, reply, begun.response);
          return; // answered: the route does not run
        case 'in_progress':
          return done(
            new GatewayError('idempotency_key_in_progress', 'A request with this Idempotency-Key is still being processed; retry once it has finished.', {
              headers: { 'retry-after': '1' },
            }),
          );
        case 'mismatch':
          return done(
            new GatewayError(
              'idempotency_key_reused',
              'This Idempotency-Key was already used for a different request (method, path or body); use a new key for a new request.',
            ),
          );
      }
    }).catch(done);
  }

  function onSend(request: FastifyRequest, reply: FastifyReply, payload: unknown, done: (err: Error | null, payload?: unknown) => void): void {
    const claim = claims.get(request);
    if (!claim?.owned) return done(null, payload);
    const storable = payload === null || payload === undefined || typeof payload === 'string' || Buffer.isBuffer(payload);
    const response: StoredResponse | undefined =
      storable && isFinalStatus(reply.statusCode)
        ? { status: reply.statusCode, headers: replayHeaders(reply.getHeaders()), body: Buffer.from((payload as string | Buffer | null) ?? ''), trailers: {} }
        : undefined;
    // Stored before it is sent: once a client has an answer, a retry gets it replayed.
    void settle(claim, response).then(() => done(null, payload));
  }

  function streamRecorder(claim: Claim): SseTap {
    let headers: Record<string, string> = {};
    const events: string[] = [];
    return {
      open: (head) => {
        headers = replayHeaders(head);
      },
      write: (event) => {
        events.push(event);
      },
      end: (trailers) => {
        if (!claim.owned) return;
        // A stream that failed or was cut off ends with an error event, not [DONE]: not final.
        const complete = events.at(-1) === DONE_EVENT;
        void settle(claim, complete ? { status: 200, headers, body: Buffer.from(events.join('')), trailers: { ...trailers } } : undefined);
      },
    };
  }

  function replay(request: FastifyRequest, reply: FastifyReply, stored: StoredResponse): void {
    reply.code(stored.status).headers(stored.headers).header(REPLAY_HEADER, 'true');
    if (stored.headers['content-type']?.startsWith('text/event-stream')) reply.header('cache-control', 'no-cache');
    for (const [name, value] of Object.entries(stored.trailers)) reply.trailer(name, async () => value);
    log.info({ reqId: request.id, route: request.url, status: stored.status, replayOf: stored.headers['x-request-id'] }, 'idempotent replay');
    void reply.send(Buffer.from(stored.body));
  }

  function refuseHeader(request: FastifyRequest, _reply: FastifyReply, done: Done): void {
    if (request.headers[HEADER] === undefined) return done();
    done(
      new GatewayError(
        'invalid_request',
        `Idempotency-Key is not supported on ${request.method} ${request.url.split('?')[0]}: its answer is shown once and never stored.`,
        { param: 'Idempotency-Key' },
      ),
    );
  }

  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    if (!methods.includes('POST')) return;
    if (route.config?.idempotency === false) {
      addRouteHook(route, 'onRequest', refuseHeader);
      return;
    }
    addRouteHook(route, 'onRequest', onRequest);
    addRouteHook(route, 'preParsing', preParsing);
    addRouteHook(route, 'preValidation', preValidation);
    addRouteHook(route, 'onSend', onSend);
  });

  async function purge(): Promise<void> {
    try {
      while ((await store.purgeExpired(Date.now(), PURGE_BATCH)) === PURGE_BATCH) {
        await new Promise((resolve) => setImmediate(resolve)); // a big backlog does not hold the event loop
      }
    } catch (err) {
      log.warn({ err }, 'could not purge expired idempotency keys');
    }
  }
  const interval = opts.purgeIntervalMs ?? 10 * 60_000;
  let timer: NodeJS.Timeout | undefined;
  if (interval > 0) {
    app.addHook('onReady', async () => {
      void track(purge());
      timer = setInterval(() => void track(purge()), interval);
      timer.unref();
    });
  }
  app.addHook('onClose', async () => {
    clearInterval(timer);
    await Promise.allSettled([...settling]); // answers being stored, before the storage closes
  });
}

/** The key, or the 400 that names the header. */
function validKey(header: string | string[]): string | GatewayError {
  const value = Array.isArray(header) ? header.join(', ') : header;
  const problem =
    value === ''
      ? 'is empty'
      : value.length > MAX_KEY_LENGTH
        ? `is ${value.length} characters long; the limit is ${MAX_KEY_LENGTH}`
        : !PRINTABLE.test(value)
          ? 'may only hold printable ASCII characters'
          : undefined;
  if (problem === undefined) return value;
  return new GatewayError('invalid_request', `Invalid Idempotency-Key header: it ${problem} (send 1 to ${MAX_KEY_LENGTH} printable characters).`, {
    param: 'Idempotency-Key',
  });
}

/** The headers a replay carries: content-type, the original x-request-id, x-tollgate-*. */
function replayHeaders(headers: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [rawName, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    const name = rawName.toLowerCase();
    if (name === 'content-type' || name === 'x-request-id' || name.startsWith('x-tollgate-')) {
      out[name] = Array.isArray(value) ? value.join(', ') : String(value);
    }
  }
  return out;
}

type HookName = 'onRequest' | 'preParsing' | 'preValidation' | 'onSend';

/** Adds a route-level hook after the route's own ones. */
function addRouteHook(route: RouteOptions, name: HookName, hook: unknown): void {
  const hooks = route as unknown as Record<HookName, unknown>;
  const current = hooks[name];
  hooks[name] = current === undefined ? [hook] : Array.isArray(current) ? [...current, hook] : [current, hook];
}
