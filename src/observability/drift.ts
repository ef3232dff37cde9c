/**
 * Input drift per route (the public model or route name a client asked for): the recent window
 * of prompts compared with a rolling baseline window just before it, on three features:
 * - `length`: prompt tokens in log2 buckets, scored with PSI;
 * - `script`: the letters' script mix (Latin, Cyrillic, Han...), scored with PSI;
 * - `embedding`: cosine distance between the recent and baseline centroids of prompt vectors
 *   (the cache's vector when it computed one, else a sample embedded off the hot path).
 *
 * Memory is bounded: only time-bucketed sums are kept, never samples. The recent window is held
 * in `slotSeconds` slots; a slot leaving it is folded into coarse baseline slots (1/48 of the
 * baseline each), which are dropped once older than the baseline. Per route that is at most
 * (recent slots + ~50) x (29 + embedding dimensions) numbers. Per process.
 */
import { Gauge, type Registry } from 'prom-client';
import type { Embedder } from '../cache/types.js';
import type { DriftConfig } from '../config/signals-schema.js';
import type { RequestObserver } from '../pipeline/stages/settle.js';
import type { Logger } from './logger.js';
import { LENGTH_BUCKETS, MAX_ANALYSED_CHARS, SCRIPTS, addScriptMix, lengthBucket } from './prompt-features.js';

export type DriftFeature = 'length' | 'script' | 'embedding';

/** One route's drift on one feature. */
export interface DriftScore {
  route: string;
  feature: DriftFeature;
  /** PSI (length, script) or cosine distance 0..2 (embedding); null until both windows have `minSamples`. */
  score: number | null;
  recentSamples: number;
  baselineSamples: number;
}

/** One prompt, as the detector sees it. */
export interface DriftSample {
  promptTokens: number;
  /** The end user's text (script mix), when there is one. */
  text?: string;
  /** Its unit-length vector, when known. */
  vector?: Float32Array;
}

export interface DriftDetectorOptions {
  config: DriftConfig;
  /** Embeds sampled prompts the cache did not embed (the cache's embedder); none: only the cache's vectors count. */
  embedder?: Embedder | undefined;
  /** The embedder calls a priced upstream model: sampled only with `embedding.sampleUpstream`. */
  embedderIsUpstream?: boolean;
  /** Names watched when `config.routes` is empty (the configured models and routes). */
  isKnownRoute?: (name: string) => boolean;
  log?: Logger;
  now?: () => number;
  random?: () => number;
}

/** Smoothing added to every bucket, so an empty bucket in either window gives a finite PSI. */
const PSI_ALPHA = 0.5;
/** Coarse baseline slots per baseline window. */
const BASELINE_SLOTS = 48;

class Aggregate {
  n = 0;
  readonly length = new Float64Array(LENGTH_BUCKETS);
  scriptN = 0;
  readonly script = new Float64Array(SCRIPTS.length);
  embN = 0;
  emb: Float64Array | undefined;

  addVector(v: Float32Array | Float64Array): void {
    if (!this.emb) this.emb = new Float64Array(v.length);
    if (this.emb.length !== v.length) return;
    for (let i = 0; i < v.length; i++) this.emb[i]! += v[i]!;
    this.embN++;
  }

  addAll(o: Aggregate): void {
    this.n += o.n;
    this.scriptN += o.scriptN;
    for (let i = 0; i < o.length.length; i++) this.length[i]! += o.length[i]!;
    for (let i = 0; i < o.script.length; i++) this.script[i]! += o.script[i]!;
    if (o.emb && o.embN > 0) {
      if (!this.emb) this.emb = new Float64Array(o.emb.length);
      if (this.emb.length === o.emb.length) {
        for (let i = 0; i < o.emb.length; i++) this.emb[i]! += o.emb[i]!;
        this.embN += o.embN;
      }
    }
  }
}

/** Population stability index of two histograms: sum over buckets of (r - b) * ln(r / b), additively smoothed. */
export function psi(recent: ArrayLike<number>, baseline: ArrayLike<number>): number {
  const k = recent.length;
  let rn = 0;
  let bn = 0;
  for (let i = 0; i < k; i++) {
    rn += recent[i]!;
    bn += baseline[i]!;
  }
  let sum = 0;
  for (let i = 0; i < k; i++) {
    const r = (recent[i]! + PSI_ALPHA) / (rn + PSI_ALPHA * k);
    const b = (baseline[i]! + PSI_ALPHA) / (bn + PSI_ALPHA * k);
    sum += (r - b) * Math.log(r / b);
  }
  return sum;
}

/** 1 - cosine similarity of two (unnormalised) centroids; 1 when either is zero. */
export function cosineDistance(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
  }
  if (na === 0 || nb === 0) return 1;
  return 1 - dot / Math.sqrt(na * nb);
}

/** One route's two windows. */
class RouteWindows {
  private readonly fine = new Map<number, Aggregate>();
  private readonly coarse = new Map<number, Aggregate>();
  private advancedTo = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly fineMs: number,
    private readonly recentSlots: number,
    private readonly coarseMs: number,
    private readonly baselineMs: number,
  ) {}

  /** Folds slots that left the recent window into the baseline and forgets what is older than it. */
  private advance(now: number): void {
    const cur = Math.floor(now / this.fineMs);
    if (cur === this.advancedTo) return; // within a slot, nothing moves
    this.advancedTo = cur;
    const firstRecent = cur - this.recentSlots + 1;
    for (const [k, agg] of this.fine) {
      if (k >= firstRecent) continue;
      const c = Math.floor((k * this.fineMs) / this.coarseMs);
      let target = this.coarse.get(c);
      if (!target) this.coarse.set(c, (target = new Aggregate()));
      target.addAll(agg);
      this.fine.delete(k);
    }
    const baselineStart = firstRecent * this.fineMs - this.baselineMs;
    for (const c of this.coarse.keys()) if ((c + 1) * this.coarseMs <= baselineStart) this.coarse.delete(c);
  }

  slot(now: number): Aggregate {
    this.advance(now);
    const cur = Math.floor(now / this.fineMs);
    let agg = this.fine.get(cur);
    if (!agg) this.fine.set(cur, (agg = new Aggregate()));
    return agg;
  }

  windows(now: number): { recent: Aggregate; baseline: Aggregate } {
    this.advance(now);
    const recent = new Aggregate();
    const baseline = new Aggregate();
    for (const a of this.fine.values()) recent.addAll(a);
    for (const a of this.coarse.values()) baseline.addAll(a);
    return { recent, baseline };
  }
}

export class DriftDetector {
  private readonly routes = new Map<string, RouteWindows>();
  private readonly watched: ReadonlySet<string> | undefined;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly fineMs: number;
  private readonly recentSlots: number;
  private readonly coarseMs: number;
  private readonly baselineMs: number;
  private embedding = 0;
  private readonly pending = new Set<Promise<void>>();
  /** Sampled embeddings: done, skipped (too many at once), failed. */
  readonly embedStats = { sampled: 0, skipped: 0, failed: 0 };

  constructor(private readonly opts: DriftDetectorOptions) {
    const c = opts.config;
    this.now = opts.now ?? Date.now;
    this.random = opts.random ?? Math.random;
    this.watched = c.routes.length > 0 ? new Set(c.routes) : undefined;
    this.fineMs = c.slotSeconds * 1000;
    this.recentSlots = Math.max(1, Math.round((c.recentMinutes * 60_000) / this.fineMs));
    this.baselineMs = c.baselineMinutes * 60_000;
    this.coarseMs = this.fineMs * Math.max(1, Math.ceil(this.baselineMs / BASELINE_SLOTS / this.fineMs));
  }

  private watches(route: string): boolean {
    if (this.watched) return this.watched.has(route);
    return this.opts.isKnownRoute ? this.opts.isKnownRoute(route) : true;
  }

  private windowsOf(route: string): RouteWindows {
    let w = this.routes.get(route);
    if (!w) this.routes.set(route, (w = new RouteWindows(this.fineMs, this.recentSlots, this.coarseMs, this.baselineMs)));
    return w;
  }

  /** Adds one prompt of `route` to the current slot (unwatched routes are ignored). */
  record(route: string, sample: DriftSample): void {
    if (!this.opts.config.enabled || !this.watches(route)) return;
    const agg = this.windowsOf(route).slot(this.now());
    agg.n++;
    agg.length[lengthBucket(sample.promptTokens)]! += 1;
    if (sample.text && addScriptMix(sample.text, agg.script)) agg.scriptN++;
    if (sample.vector) agg.addVector(sample.vector);
  }

  /** Adds a vector computed later (sampled embedding) to the current slot. */
  private recordVector(route: string, vector: Float32Array): void {
    this.windowsOf(route).slot(this.now()).addVector(vector);
  }

  /** The settle observer: O(prompt length), the embedding (when sampled) runs in the background. */
  readonly observe: RequestObserver = (ctx) => {
    const route = ctx.model?.name;
    if (!route || !this.opts.config.enabled || !this.watches(route)) return;
    const { text, tokens } = ctx.prompt;
    const vector = ctx.cache?.vector;
    this.record(route, { promptTokens: tokens, text, ...(vector ? { vector } : {}) });
    if (!vector && text.trim() !== '') this.maybeEmbed(route, text);
  };

  private maybeEmbed(route: string, text: string): void {
    const { embedder } = this.opts;
    const { sampleRate, maxConcurrent, sampleUpstream } = this.opts.config.embedding;
    if (!embedder || sampleRate <= 0 || (this.opts.embedderIsUpstream && !sampleUpstream) || this.random() >= sampleRate) return;
    if (this.embedding >= maxConcurrent) {
      this.embedStats.skipped++;
      return;
    }
    this.embedding++;
    const done: Promise<void> = embedder
      .embed([text.slice(0, MAX_ANALYSED_CHARS)])
      .then(({ vectors }) => {
        const v = vectors[0];
        if (v) this.recordVector(route, v);
        this.embedStats.sampled++;
      })
      .catch((err: unknown) => {
        this.embedStats.failed++;
        this.opts.log?.debug({ err, route }, 'drift: could not embed a sampled prompt');
      })
      .finally(() => {
        this.embedding--;
        this.pending.delete(done);
      });
    this.pending.add(done);
  }

  /** Resolves when the sampled embeddings in flight are done (shutdown, tests). */
  async drain(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }

  /** Every watched route's score per feature (routes seen so far), for the dashboard, alerts and /admin/v1/drift. */
  scores(): DriftScore[] {
    const now = this.now();
    const min = this.opts.config.minSamples;
    const out: DriftScore[] = [];
    for (const [route, w] of [...this.routes].sort(([a], [b]) => a.localeCompare(b))) {
      const { recent, baseline } = w.windows(now);
      const ready = (r: number, b: number) => r >= min && b >= min;
      out.push({ route, feature: 'length', score: ready(recent.n, baseline.n) ? psi(recent.length, baseline.length) : null, recentSamples: recent.n, baselineSamples: baseline.n });
      out.push({
        route,
        feature: 'script',
        score: ready(recent.scriptN, baseline.scriptN) ? psi(recent.script, baseline.script) : null,
        recentSamples: recent.scriptN,
        baselineSamples: baseline.scriptN,
      });
      out.push({
        route,
        feature: 'embedding',
        score: ready(recent.embN, baseline.embN) && recent.emb && baseline.emb ? cosineDistance(recent.emb, baseline.emb) : null,
        recentSamples: recent.embN,
        baselineSamples: baseline.embN,
      });
    }
    return out;
  }

  /** `tollgate_drift_score{route,feature}`, computed at scrape time (only scores that are ready). */
  registerMetrics(registry: Registry): void {
    const self = this;
    new Gauge({
      name: 'tollgate_drift_score',
      help: 'Input drift of a route, recent window vs baseline: PSI for feature=length|script, centroid cosine distance for feature=embedding.',
      labelNames: ['route', 'feature'],
      registers: [registry],
      collect() {
        this.reset();
        for (const s of self.scores()) if (s.score !== null) this.set({ route: s.route, feature: s.feature }, s.score);
      },
    });
  }
}
