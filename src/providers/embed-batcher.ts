/**
 * Embeddings micro-batching: single-input embedding requests for the same deployment (and the
 * same `dimensions` and `encoding_format`) that arrive within `windowMs` of each other are sent
 * upstream as one array request, and the answer is split back: each request gets its own vector
 * (index 0) and its share of the usage (upstream's prompt tokens split in proportion to each
 * input's locally counted tokens; the shares add up to upstream's total exactly).
 *
 * A batch leaves when its window ends or when it holds `maxBatchSize` inputs. A failure reaches
 * every request of the batch (each then retries or falls back on its own, in invoke). A request
 * whose client goes away before the batch leaves is taken out of it; after, it is answered with
 * an abort while the others get their vectors; upstream is aborted only when every request of a
 * batch has gone. Requests with several inputs, or token-array inputs, pass through unbatched.
 */
import { countText, loadTokenizer } from '../metering/tokenizer.js';
import type { Deployment } from '../routing/catalog.js';
import { type CallOptions, type EmbeddingRequest, type EmbeddingResponse, UpstreamError } from './types.js';

/** Texts up to this many characters in all are weighed by their token counts; longer batches by UTF-8 bytes (bounded work in a callback). */
const COUNTED_CHARS = 16_384;

/** Each input's weight in the split of upstream's usage: its tokens, or its bytes for a large batch. */
function sharesOf(texts: string[]): number[] {
  let chars = 0;
  for (const t of texts) chars += t.length;
  return chars <= COUNTED_CHARS ? texts.map((t) => countText(t)) : texts.map((t) => Buffer.byteLength(t, 'utf8'));
}

export interface EmbedBatchingConfig {
  enabled: boolean;
  /** How long the first request of a batch waits for others, ms. */
  windowMs: number;
  maxBatchSize: number;
}

interface Waiter {
  text: string;
  signal: AbortSignal;
  resolve: (r: EmbeddingResponse) => void;
  reject: (err: unknown) => void;
  onAbort: () => void;
}

interface Batch {
  dep: Deployment;
  req: EmbeddingRequest;
  waiters: Waiter[];
  timer: unknown;
}

/** How a batch's window is timed: default, real timers; tests end windows themselves. */
export interface BatchTimer {
  set(fire: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

const REAL_TIMER: BatchTimer = {
  set: (fire, ms) => setTimeout(fire, ms),
  clear: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

export interface EmbedBatcherStats {
  /** Requests that went through a batch. */
  batchedRequests: number;
  /** Upstream calls those batches made. */
  upstreamCalls: number;
}

/** Splits `total` in proportion to `weights` (largest remainders), so the parts add up to it exactly. */
export function splitProportionally(total: number, weights: readonly number[]): number[] {
  const sum = weights.reduce((a, w) => a + w, 0);
  if (weights.length === 0) return [];
  if (sum <= 0) {
    const even = weights.map(() => Math.floor(total / weights.length));
    for (let i = 0; i < total - even.reduce((a, b) => a + b, 0); i++) even[i % even.length]! += 1;
    return even;
  }
  const exact = weights.map((w) => (total * w) / sum);
  const parts = exact.map(Math.floor);
  const order = exact.map((e, i) => [e - Math.floor(e), i] as const).sort((a, b) => b[0] - a[0]);
  for (let k = 0; k < total - parts.reduce((a, b) => a + b, 0); k++) parts[order[k % order.length]![1]]! += 1;
  return parts;
}

export class EmbedBatcher {
  private readonly open = new Map<string, Batch>();
  readonly stats: EmbedBatcherStats = { batchedRequests: 0, upstreamCalls: 0 };
  /** Called once per upstream call a batch makes, with its size (metrics). */
  onBatch: ((size: number) => void) | undefined;

  constructor(
    private readonly cfg: EmbedBatchingConfig,
    private readonly timer: BatchTimer = REAL_TIMER,
    onBatch?: (size: number) => void,
  ) {
    this.onBatch = onBatch;
  }

  /** The input of a request that can be batched: a single string. */
  private static single(req: EmbeddingRequest): string | undefined {
    if (typeof req.input === 'string') return req.input;
    if (Array.isArray(req.input) && req.input.length === 1 && typeof req.input[0] === 'string') return req.input[0];
    return undefined;
  }

  /** Embeds through the deployment, batched with other single-input requests when it can be. */
  embed(dep: Deployment, req: EmbeddingRequest, call: CallOptions): Promise<EmbeddingResponse> {
    const text = this.cfg.enabled ? EmbedBatcher.single(req) : undefined;
    if (text === undefined) return dep.provider.embed(req, call);
    if (call.signal.aborted) return Promise.reject(call.signal.reason ?? new UpstreamError('aborted', 'client closed the connection'));
    const key = `${dep.id}\u0000${req.dimensions ?? ''}\u0000${req.encoding_format ?? ''}`;
    let batch = this.open.get(key);
    if (!batch) {
      batch = { dep, req, waiters: [], timer: undefined };
      const b = batch;
      batch.timer = this.timer.set(() => this.flush(key, b), this.cfg.windowMs);
      this.open.set(key, batch);
    }
    const b = batch;
    return new Promise<EmbeddingResponse>((resolve, reject) => {
      const waiter: Waiter = {
        text,
        signal: call.signal,
        resolve,
        reject,
        onAbort: () => {
          // Still waiting for the batch to leave: take it out.
          const i = b.waiters.indexOf(waiter);
          if (i >= 0 && this.open.get(key) === b) b.waiters.splice(i, 1);
          reject(call.signal.reason ?? new UpstreamError('aborted', 'client closed the connection'));
        },
      };
      call.signal.addEventListener('abort', waiter.onAbort, { once: true });
      b.waiters.push(waiter);
      if (b.waiters.length >= this.cfg.maxBatchSize) this.flush(key, b);
    });
  }

  private flush(key: string, batch: Batch): void {
    if (this.open.get(key) !== batch) return;
    this.open.delete(key);
    this.timer.clear(batch.timer);
    const waiters = batch.waiters;
    if (waiters.length === 0) return;
    const controller = new AbortController();
    let left = waiters.length;
    for (const w of waiters) {
      w.signal.removeEventListener('abort', w.onAbort);
      w.signal.addEventListener(
        'abort',
        () => {
          w.reject(w.signal.reason ?? new UpstreamError('aborted', 'client closed the connection'));
          if (--left === 0) controller.abort(new UpstreamError('aborted', 'every request of the batch went away'));
        },
        { once: true },
      );
    }
    this.stats.batchedRequests += waiters.length;
    this.stats.upstreamCalls++;
    this.onBatch?.(waiters.length);
    const { dep, req } = batch;
    const upstream: EmbeddingRequest = { model: req.model, input: waiters.map((w) => w.text) };
    if (req.dimensions !== undefined) upstream.dimensions = req.dimensions;
    if (req.encoding_format !== undefined) upstream.encoding_format = req.encoding_format;
    const call = dep.provider.embed(upstream, { signal: controller.signal, upstreamModel: dep.upstreamModel });
    Promise.all([call, loadTokenizer()]).then(
      ([res]) => {
        const byIndex = new Map(res.data.map((d) => [d.index, d.embedding]));
        if (byIndex.size !== waiters.length) {
          const err = new UpstreamError('protocol', `the batched embeddings answer has ${byIndex.size} vectors for ${waiters.length} inputs`);
          for (const w of waiters) w.reject(err);
          return;
        }
        const shares = splitProportionally(
          res.usage?.prompt_tokens ?? 0,
          sharesOf(waiters.map((w) => w.text)),
        );
        waiters.forEach((w, i) => {
          const tokens = shares[i] ?? 0;
          w.resolve({
            object: 'list',
            data: [{ object: 'embedding', index: 0, embedding: byIndex.get(i) as number[] | string }],
            model: res.model,
            usage: { prompt_tokens: tokens, total_tokens: tokens },
          });
        });
      },
      (err: unknown) => {
        for (const w of waiters) w.reject(err);
      },
    );
  }
}
