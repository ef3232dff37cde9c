/**
 * The request log's writer: one row of metadata per request (GET /admin/v1/requests), built by a
 * settle observer and written to the store in batches, off the hot path.
 *
 * Bounded by design: rows wait in an in-memory queue of at most `maxPending`; when a burst (or a
 * store outage) fills it, the OLDEST waiting rows are dropped and counted in
 * `tollgate_request_log_dropped_total`. One batch at a time is being written (`batchSize` rows at
 * most, besides the queue). A failed write puts its batch back at the head of the queue (the bound
 * still applies) and is retried with backoff; failures are logged at most every 10 s. The request
 * path only builds the row and pushes it: it never awaits the store.
 *
 * Text: a tenant whose policy sets `requestLog.content: true` (and `requestLog.content: opt-in`
 * in config) has its prompt and answer kept, capped at `maxTextChars` and redacted
 * (src/observability/redact.ts) before they are queued. Everyone else's rows carry no text.
 *
 * Retention: every few minutes rows older than `retentionDays` are deleted, in batches.
 */
import { Counter } from 'prom-client';
import type { Registry } from 'prom-client';
import type { RequestLogConfig } from '../config/request-log-schema.js';
import type { RequestContext } from '../pipeline/context.js';
import type { RequestObserver, SettledRequest } from '../pipeline/stages/settle.js';
import type { ContentPart } from '../providers/types.js';
import type { RequestLogEntry, RequestLogStore } from '../storage/types.js';
import type { Logger } from './logger.js';
import { redactCapped } from './redact.js';

const DAY_MS = 86_400_000;
const PRUNE_EVERY_MS = 5 * 60_000;
const PRUNE_BATCH = 5_000;
/** Prune batches per run at most: a huge backlog is worked off over several runs. */
const PRUNE_BATCHES_PER_RUN = 20;
const LOG_EVERY_MS = 10_000;
const MAX_RETRY_MS = 30_000;

const round1 = (ms: number) => Math.round(ms * 10) / 10;

/** The text of a chat request's messages (`role: content` lines) or an embedding request's input, up to `max` characters. */
export function promptText(ctx: RequestContext, max: number): string {
  let out = '';
  const add = (piece: string) => {
    if (out.length < max) out += out ? `\n${piece}` : piece;
  };
  if (ctx.operation === 'chat') {
    for (const m of ctx.body.messages ?? []) {
      if (out.length >= max) break;
      const content = m.content;
      if (typeof content === 'string') add(`${m.role}: ${content}`);
      else if (Array.isArray(content)) add(`${m.role}: ${content.map((p: ContentPart) => (p.type === 'text' && typeof p['text'] === 'string' ? p['text'] : `[${p.type}]`)).join(' ')}`);
      else if (m.tool_calls) add(`${m.role}: ${m.tool_calls.map((c) => `${c.function.name}(${c.function.arguments})`).join('\n')}`);
    }
  } else {
    const input = ctx.body.input;
    if (typeof input === 'string') add(input);
    else if (Array.isArray(input)) for (const item of input) if (typeof item === 'string') add(item);
  }
  return out;
}

/** The answer's text: a stream's collected text, or the chat completion's first choice. */
export function answerText(ctx: RequestContext): string | null {
  if (ctx.answerText !== undefined) return ctx.answerText;
  const result = ctx.result;
  if (result?.kind !== 'chat') return null;
  const message = result.body.choices[0]?.message;
  if (!message) return null;
  let text = message.content ?? '';
  for (const call of message.tool_calls ?? []) text += `${text ? '\n' : ''}${call.function.name}(${call.function.arguments})`;
  return text;
}

/** What the request log keeps of an ended request. `text` (the tenant opted in): keep the prompt and answer, capped at `maxTextChars` and redacted. */
export function requestLogEntry(ctx: RequestContext, settled: SettledRequest, text?: { maxTextChars: number }): RequestLogEntry {
  const auth = ctx.auth;
  let upstreamMs = 0;
  let attempts = 0;
  for (const a of ctx.attempts) {
    upstreamMs += a.durationMs;
    if (a.outcome !== 'circuit_open') attempts++;
  }
  const u = ctx.usage;
  const isJob = ctx.route === '/v1/jobs' || ctx.route === '/v1/batches';
  const answer = text ? answerText(ctx) : null;
  return {
    id: ctx.eventId,
    requestId: ctx.id,
    ts: ctx.receivedAt,
    tenantId: auth?.tenantId ?? null,
    keyId: auth?.keyId ?? null,
    userId: ctx.endUser || null,
    route: ctx.route,
    requestedModel: typeof ctx.body?.model === 'string' ? ctx.body.model : '',
    servedModel: ctx.servedBy ? ctx.servedBy.model : ctx.cache?.served ? (ctx.model?.name ?? null) : null,
    deployment: ctx.servedBy?.id ?? null,
    tier: ctx.routing ? (ctx.routing.tiers[ctx.routing.tier]?.name ?? null) : null,
    status: settled.status,
    errorCode: ctx.error?.code ?? ctx.streamError?.code ?? null,
    cache: ctx.cache?.outcome ?? 'none',
    latencyMs: round1(settled.latencyMs),
    ttftMs: ctx.ttftMs === undefined ? null : round1(ctx.ttftMs),
    upstreamMs: round1(upstreamMs),
    attempts,
    promptTokens: (u?.prompt_tokens ?? 0) + (ctx.discarded?.promptTokens ?? 0),
    completionTokens: (u?.completion_tokens ?? 0) + (ctx.discarded?.completionTokens ?? 0),
    costPico: ctx.costPico ?? 0,
    // The client's answer was a stream (a job runs as one internally; its client gets JSON).
    stream: !isJob && (ctx.result?.kind === 'stream' || (ctx.operation === 'chat' && ctx.body.stream === true)),
    traceId: ctx.traceId ?? null,
    jobId: isJob ? ctx.id : null,
    prompt: text ? redactCapped(promptText(ctx, text.maxTextChars + 1), text.maxTextChars) : null,
    answer: text && answer !== null ? redactCapped(answer, text.maxTextChars) : null,
  };
}

export interface RequestLogWriterOptions {
  store: Pick<RequestLogStore, 'append' | 'prune'>;
  config: RequestLogConfig;
  log: Logger;
  /** Where `tollgate_request_log_dropped_total` is registered (the gateway's metrics registry). */
  registry?: Registry;
  now?: () => number;
}

export class RequestLogWriter {
  readonly #store: RequestLogWriterOptions['store'];
  readonly #config: RequestLogConfig;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #dropped: Counter<'reason'>;
  /** Waiting rows, oldest first, from `#head` on (a queue without O(n) shifts). */
  #queue: RequestLogEntry[] = [];
  #head = 0;
  #writing: Promise<void> | undefined;
  #failures = 0;
  #retryAt = 0;
  #lastLogged = 0;
  #droppedSinceLog = 0;
  #flushTimer: NodeJS.Timeout | undefined;
  #pruneTimer: NodeJS.Timeout | undefined;
  #pruning: Promise<void> | undefined;
  #closed = false;

  constructor(opts: RequestLogWriterOptions) {
    this.#store = opts.store;
    this.#config = opts.config;
    this.#log = opts.log;
    this.#now = opts.now ?? Date.now;
    this.#dropped = new Counter({
      name: 'tollgate_request_log_dropped_total',
      help: 'Request log rows dropped before they were written: full (the oldest waiting rows, when maxPending is reached) or closed (unwritten at shutdown).',
      labelNames: ['reason'],
      registers: opts.registry ? [opts.registry] : [],
    });
  }

  /** The settle observer: builds the request's row and queues it. */
  readonly observe: RequestObserver = (ctx, settled) => {
    if (this.#closed) return;
    const optedIn = this.#config.content === 'opt-in' && ctx.auth?.tenantPolicy?.requestLog?.content === true;
    this.push(requestLogEntry(ctx, settled, optedIn ? { maxTextChars: this.#config.maxTextChars } : undefined));
  };

  /** Rows waiting to be written (not counting a batch being written). */
  get pending(): number {
    return this.#queue.length - this.#head;
  }

  /** Queues a row, dropping the oldest waiting one when the queue is full. */
  push(entry: RequestLogEntry): void {
    this.#queue.push(entry);
    this.#shed();
    if (this.pending >= this.#config.batchSize && !this.#writing && this.#now() >= this.#retryAt) this.#kick();
  }

  /** Starts the periodic flush and pruning. */
  start(): void {
    this.#flushTimer ??= setInterval(() => this.#kick(), this.#config.flushMs);
    this.#flushTimer.unref();
    this.#pruneTimer ??= setInterval(() => void this.prune(), PRUNE_EVERY_MS);
    this.#pruneTimer.unref();
    void this.prune();
  }

  /** Writes what waits now (in batches); resolves when done or when a write fails. */
  async flush(): Promise<void> {
    await this.#writing;
    while (this.pending > 0) {
      this.#retryAt = 0;
      this.#kick();
      await this.#writing;
      if (this.#failures > 0) return;
    }
  }

  /** Deletes rows past the retention, in bounded batches; returns how many. */
  async prune(): Promise<number> {
    if (this.#pruning) return this.#pruning.then(() => 0);
    let deleted = 0;
    const before = this.#now() - this.#config.retentionDays * DAY_MS;
    this.#pruning = (async () => {
      for (let i = 0; i < PRUNE_BATCHES_PER_RUN && !this.#closed; i++) {
        const n = await this.#store.prune(before, PRUNE_BATCH);
        deleted += n;
        if (n < PRUNE_BATCH) break;
      }
    })()
      .catch((err: unknown) => this.#log.warn({ err }, 'request log: could not delete old rows'))
      .finally(() => (this.#pruning = undefined));
    await this.#pruning;
    return deleted;
  }

  /** Stops the timers and writes what is pending (rows still unwritten after a failure are dropped, counted). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#flushTimer);
    clearInterval(this.#pruneTimer);
    await this.#pruning;
    await this.flush();
    const left = this.pending;
    if (left > 0) {
      this.#dropped.inc({ reason: 'closed' }, left);
      this.#log.error({ rows: left }, 'request log: rows could not be written before shutdown');
      this.#queue = [];
      this.#head = 0;
    }
  }

  #shed(): void {
    const over = this.pending - this.#config.maxPending;
    if (over <= 0) return;
    this.#head += over;
    this.#dropped.inc({ reason: 'full' }, over);
    this.#droppedSinceLog += over;
    this.#compact();
    this.#warn(undefined);
  }

  #compact(): void {
    if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
  }

  /** Starts writing one batch unless one is being written (then it continues when that ends). */
  #kick(): void {
    if (this.#writing || this.pending === 0 || this.#now() < this.#retryAt) return;
    const batch = this.#queue.slice(this.#head, this.#head + this.#config.batchSize);
    this.#head += batch.length;
    this.#compact();
    if (this.pending === 0) {
      this.#queue = [];
      this.#head = 0;
    }
    this.#writing = this.#write(batch).finally(() => {
      this.#writing = undefined;
      // A full batch waits: write it now rather than at the next tick.
      if (this.#failures === 0 && this.pending >= this.#config.batchSize) this.#kick();
    });
  }

  async #write(batch: RequestLogEntry[]): Promise<void> {
    try {
      await this.#store.append(batch);
      this.#failures = 0;
      this.#retryAt = 0;
    } catch (err) {
      this.#failures++;
      this.#retryAt = this.#now() + Math.min(MAX_RETRY_MS, this.#config.flushMs * 2 ** (this.#failures - 1));
      // Back at the head: they are the oldest; if that overfills the queue, the oldest go.
      this.#queue = [...batch, ...this.#queue.slice(this.#head)];
      this.#head = 0;
      this.#shed();
      this.#warn(err);
    }
  }

  /** Logs a write failure or dropped rows, at most every 10 s. */
  #warn(err: unknown): void {
    const now = this.#now();
    if (now - this.#lastLogged < LOG_EVERY_MS) return;
    this.#lastLogged = now;
    const dropped = this.#droppedSinceLog;
    this.#droppedSinceLog = 0;
    this.#log.warn(
      { err, pending: this.pending, dropped, failures: this.#failures },
      err ? 'request log: the store did not take a batch; rows wait in memory (bounded), the oldest are dropped when full' : 'request log: full, dropped the oldest rows',
    );
  }
}
