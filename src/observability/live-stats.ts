/**
 * Live statistics for the dashboard and for alert rules: per-second buckets of the last hour
 * (a ring of 3,600 slots, so memory stays bounded whatever the traffic), each holding counts,
 * tokens, cost, cache outcomes, the routing mix and fixed-bucket histograms of latency and time
 * to first token per tier. Quantiles are read from the histograms, so buckets from several
 * processes can simply be summed.
 *
 * Distributed mode: every process publishes its last few seconds over the change bus every ~2 s
 * and keeps its peers' buckets (a peer silent for more than 10 s is dropped), so every process
 * answers for the whole cluster.
 */
import type { RequestObserver } from '../pipeline/stages/settle.js';
import { type ChangeBus, onMessage } from '../storage/change-bus.js';

/** What a process publishes every second on the change bus: its last 5 seconds (checked again on receipt). */
interface LiveStatsMessage {
  kind: 'live-stats';
  node: string;
  buckets: unknown[];
}
import {
  HOUR_SEC,
  type LiveBucket,
  Ring,
  SLOTS,
  addInto,
  capKey,
  emptyBucket,
  hitRate,
  histogramQuantile,
  mergeBucket,
  parseBucket,
  slotOf,
} from './live-buckets.js';

export { LATENCY_BOUNDS_MS, type LiveBucket, type TierCell, histogramQuantile } from './live-buckets.js';

/** What one ended request contributes (built from the request context by `observe`). */
export interface LiveSample {
  /** Epoch ms when it ended. */
  at: number;
  status: number;
  latencyMs: number;
  ttftMs?: number | undefined;
  tier: string;
  servedModel?: string | undefined;
  promptTokens: number;
  completionTokens: number;
  costPico: number;
  savedPico: number;
  cache?: string | undefined;
  fallback: boolean;
  streamError: boolean;
}

export interface TierSnapshot {
  requests: number;
  errors: number;
  p50Ms: number | null;
  p95Ms: number | null;
  p99Ms: number | null;
  ttftP50Ms: number | null;
  ttftP95Ms: number | null;
}

/** Totals and rates over a window (the whole cluster in distributed mode). */
export interface LiveSnapshot {
  windowSec: number;
  requests: number;
  requestsPerSec: number;
  errors: number;
  failures: number;
  refusals: number;
  fallbacks: number;
  /** errors / requests (0 without requests). */
  errorRate: number;
  promptTokens: number;
  completionTokens: number;
  costUsd: number;
  costPerHourUsd: number;
  costPerRequestUsd: number;
  savedUsd: number;
  cache: Record<string, number>;
  /** (hit + semantic + coalesced) / (those + miss + stale); null without lookups. */
  cacheHitRate: number | null;
  p50Ms: number | null;
  p95Ms: number | null;
  p99Ms: number | null;
  ttftP50Ms: number | null;
  ttftP95Ms: number | null;
  tiers: Record<string, TierSnapshot>;
  models: Record<string, number>;
  /** Processes whose buckets are included (this one and its live peers). */
  nodes: number;
}

/** Chart series: one point per `stepSec`, oldest first; quantiles in ms (null: no data). */
export interface LiveSeries {
  stepSec: number;
  /** Epoch seconds (the start of each step). */
  t: number[];
  requestsPerSec: number[];
  errorsPerSec: number[];
  failuresPerSec: number[];
  refusalsPerSec: number[];
  fallbacksPerSec: number[];
  costPerHourUsd: number[];
  costPerRequestUsd: Array<number | null>;
  cacheHitRate: Array<number | null>;
  savedUsdPerHour: number[];
  ttftP50Ms: Array<number | null>;
  ttftP95Ms: Array<number | null>;
  /** Per tier: p50, p95, p99 latency. */
  latency: Record<string, { p50: Array<number | null>; p95: Array<number | null>; p99: Array<number | null> }>;
  /** Requests per second by tier and by served model. */
  tierMix: Record<string, number[]>;
  modelMix: Record<string, number[]>;
}

export interface LiveStatsOptions {
  now?: () => number;
  /** Distributed mode: where buckets are exchanged with the other processes. */
  bus?: Pick<ChangeBus, 'publish' | 'subscribe'> | undefined;
  /** This process's name on the bus (unique per process). */
  nodeId?: string;
  publishEveryMs?: number;
  /** A peer not heard from for this long is left out. */
  peerTimeoutMs?: number;
}

export class LiveStats {
  private readonly local = new Ring();
  private readonly peers = new Map<string, { ring: Ring; lastSeen: number }>();
  private readonly now: () => number;
  private readonly nodeId: string;
  private readonly peerTimeoutMs: number;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: LiveStatsOptions = {}) {
    this.now = opts.now ?? Date.now;
    this.nodeId = opts.nodeId ?? `node-${process.pid}`;
    this.peerTimeoutMs = opts.peerTimeoutMs ?? 10_000;
    if (opts.bus)
      onMessage<LiveStatsMessage>(opts.bus, 'live-stats', (m) => {
        if (m.node !== this.nodeId) this.receive(m.node, m.buckets);
      }, (m) => typeof (m as LiveStatsMessage).node === 'string' && Array.isArray((m as LiveStatsMessage).buckets));
  }

  /** The settle observer (the `live stats` settle step, src/pipeline/pipeline.ts). */
  readonly observe: RequestObserver = (ctx, settled) => {
    const u = ctx.usage;
    const served = ctx.servedBy;
    const first = ctx.chain?.[0];
    this.record({
      at: this.now(),
      status: settled.status,
      latencyMs: settled.latencyMs,
      ttftMs: ctx.ttftMs,
      tier: ctx.routing?.tiers[ctx.routing.tier]?.name ?? 'none',
      servedModel: served ? served.model : ctx.cache?.served ? ctx.model?.name : undefined,
      promptTokens: (u?.prompt_tokens ?? 0) + (ctx.discarded?.promptTokens ?? 0),
      completionTokens: (u?.completion_tokens ?? 0) + (ctx.discarded?.completionTokens ?? 0),
      costPico: ctx.costPico ?? 0,
      savedPico: ctx.savedPico ?? 0,
      cache: ctx.cache?.outcome,
      fallback: ctx.attempts.length > 1 || (served !== undefined && first !== undefined && served.id !== first.id),
      streamError: ctx.streamError !== undefined,
    });
  };

  record(s: LiveSample): void {
    const b = this.local.at(Math.floor(s.at / 1000), true);
    b.requests++;
    const error = (s.status >= 500 && s.status !== 499) || s.streamError;
    if (error) b.errors++;
    else if (s.status === 402 || s.status === 429) b.refusals++;
    else if (s.status >= 400) b.failures++;
    if (s.fallback) b.fallbacks++;
    b.promptTokens += s.promptTokens;
    b.completionTokens += s.completionTokens;
    b.costPico += s.costPico;
    b.savedPico += s.savedPico;
    if (s.cache) {
      const k = capKey(b.cache, s.cache);
      b.cache[k] = (b.cache[k] ?? 0) + 1;
    }
    if (s.servedModel) {
      const k = capKey(b.models, s.servedModel);
      b.models[k] = (b.models[k] ?? 0) + 1;
    }
    const tier = capKey(b.tiers, s.tier);
    const cell = (b.tiers[tier] ??= { requests: 0, errors: 0, latency: new Array<number>(SLOTS).fill(0), ttft: new Array<number>(SLOTS).fill(0) });
    cell.requests++;
    if (error) cell.errors++;
    cell.latency[slotOf(s.latencyMs)]!++;
    if (s.ttftMs !== undefined) cell.ttft[slotOf(s.ttftMs)]!++;
  }

  /** Starts publishing to the bus (distributed mode); a no-op without one. */
  start(): void {
    if (!this.opts.bus || this.timer) return;
    this.timer = setInterval(() => void this.publish(), this.opts.publishEveryMs ?? 2_000);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Sends this process's last 5 seconds (overlapping publishes: one lost message loses nothing). */
  async publish(): Promise<void> {
    if (!this.opts.bus) return;
    const nowSec = Math.floor(this.now() / 1000);
    const buckets: LiveBucket[] = [];
    for (let t = nowSec - 4; t <= nowSec; t++) {
      const b = this.local.at(t);
      if (b) buckets.push(b);
    }
    await this.opts.bus.publish({ kind: 'live-stats', node: this.nodeId, buckets } satisfies LiveStatsMessage);
  }

  /** A peer's buckets: each replaces that peer's copy of the same second. */
  receive(node: string, buckets: unknown): void {
    let peer = this.peers.get(node);
    if (!peer) {
      if (this.peers.size >= 256) return;
      peer = { ring: new Ring(), lastSeen: 0 };
      this.peers.set(node, peer);
    }
    peer.lastSeen = this.now();
    if (!Array.isArray(buckets)) return;
    for (const raw of buckets.slice(0, 60)) {
      const b = parseBucket(raw);
      if (b) peer.ring.put(b);
    }
  }

  /** The rings counted now: this process's and its live peers'. */
  private rings(): Ring[] {
    const now = this.now();
    const rings = [this.local];
    for (const [node, peer] of this.peers) {
      if (now - peer.lastSeen > this.peerTimeoutMs) this.peers.delete(node);
      else rings.push(peer.ring);
    }
    return rings;
  }

  /** Seconds [from, to] summed over every ring into one bucket. */
  private sum(rings: Ring[], from: number, to: number): LiveBucket {
    const total = emptyBucket(from);
    for (let t = from; t <= to; t++) {
      for (const r of rings) {
        const b = r.at(t);
        if (b) mergeBucket(total, b);
      }
    }
    return total;
  }

  private windowOf(windowSec: number): { from: number; to: number; sec: number } {
    const sec = Math.max(1, Math.min(HOUR_SEC, Math.floor(windowSec)));
    const to = Math.floor(this.now() / 1000);
    return { from: to - sec + 1, to, sec };
  }

  private histOf(b: LiveBucket, kind: 'latency' | 'ttft', tier?: string): number[] {
    const h = new Array<number>(SLOTS).fill(0);
    for (const [name, cell] of Object.entries(b.tiers)) if (tier === undefined || name === tier) addInto(h, cell[kind]);
    return h;
  }

  /** The q-quantile (0..1) of latency over the last `windowSec` seconds, in ms; null without requests. */
  latencyQuantile(q: number, opts: { tier?: string; windowSec: number }): number | null {
    const w = this.windowOf(opts.windowSec);
    return histogramQuantile(this.histOf(this.sum(this.rings(), w.from, w.to), 'latency', opts.tier), q);
  }

  /** Errors (5xx, broken streams) over requests in the window; 0 without requests. */
  errorRate(opts: { tier?: string; windowSec: number }): number {
    const w = this.windowOf(opts.windowSec);
    const b = this.sum(this.rings(), w.from, w.to);
    const n = opts.tier === undefined ? b.requests : (b.tiers[opts.tier]?.requests ?? 0);
    const e = opts.tier === undefined ? b.errors : (b.tiers[opts.tier]?.errors ?? 0);
    return n === 0 ? 0 : e / n;
  }

  snapshot(windowSec: number): LiveSnapshot {
    const rings = this.rings();
    const w = this.windowOf(windowSec);
    const b = this.sum(rings, w.from, w.to);
    const lat = this.histOf(b, 'latency');
    const ttft = this.histOf(b, 'ttft');
    const tiers: Record<string, TierSnapshot> = {};
    for (const [name, c] of Object.entries(b.tiers)) {
      tiers[name] = {
        requests: c.requests,
        errors: c.errors,
        p50Ms: histogramQuantile(c.latency, 0.5),
        p95Ms: histogramQuantile(c.latency, 0.95),
        p99Ms: histogramQuantile(c.latency, 0.99),
        ttftP50Ms: histogramQuantile(c.ttft, 0.5),
        ttftP95Ms: histogramQuantile(c.ttft, 0.95),
      };
    }
    const costUsd = b.costPico / 1e12;
    return {
      windowSec: w.sec,
      requests: b.requests,
      requestsPerSec: b.requests / w.sec,
      errors: b.errors,
      failures: b.failures,
      refusals: b.refusals,
      fallbacks: b.fallbacks,
      errorRate: b.requests === 0 ? 0 : b.errors / b.requests,
      promptTokens: b.promptTokens,
      completionTokens: b.completionTokens,
      costUsd,
      costPerHourUsd: (costUsd * HOUR_SEC) / w.sec,
      costPerRequestUsd: b.requests === 0 ? 0 : costUsd / b.requests,
      savedUsd: b.savedPico / 1e12,
      cache: b.cache,
      cacheHitRate: hitRate(b.cache),
      p50Ms: histogramQuantile(lat, 0.5),
      p95Ms: histogramQuantile(lat, 0.95),
      p99Ms: histogramQuantile(lat, 0.99),
      ttftP50Ms: histogramQuantile(ttft, 0.5),
      ttftP95Ms: histogramQuantile(ttft, 0.95),
      tiers,
      models: b.models,
      nodes: rings.length,
    };
  }

  /** Chart series over the last `windowSec` seconds, one point per `stepSec`. */
  series(windowSec: number, stepSec: number): LiveSeries {
    const rings = this.rings();
    const step = Math.max(1, Math.floor(stepSec));
    const w = this.windowOf(windowSec);
    const first = Math.floor(w.from / step) * step;
    const steps: LiveBucket[] = [];
    const tierNames = new Set<string>();
    const modelNames = new Set<string>();
    for (let t = first; t <= w.to; t += step) {
      const b = this.sum(rings, t, Math.min(t + step - 1, w.to));
      for (const n of Object.keys(b.tiers)) tierNames.add(n);
      for (const n of Object.keys(b.models)) modelNames.add(n);
      steps.push(b);
    }
    const perSec = (b: LiveBucket, v: number) => v / Math.max(1, Math.min(step, w.to - b.t + 1));
    const s: LiveSeries = {
      stepSec: step,
      t: steps.map((b) => b.t),
      requestsPerSec: steps.map((b) => perSec(b, b.requests)),
      errorsPerSec: steps.map((b) => perSec(b, b.errors)),
      failuresPerSec: steps.map((b) => perSec(b, b.failures)),
      refusalsPerSec: steps.map((b) => perSec(b, b.refusals)),
      fallbacksPerSec: steps.map((b) => perSec(b, b.fallbacks)),
      costPerHourUsd: steps.map((b) => perSec(b, b.costPico / 1e12) * HOUR_SEC),
      costPerRequestUsd: steps.map((b) => (b.requests === 0 ? null : b.costPico / 1e12 / b.requests)),
      cacheHitRate: steps.map((b) => hitRate(b.cache)),
      savedUsdPerHour: steps.map((b) => perSec(b, b.savedPico / 1e12) * HOUR_SEC),
      ttftP50Ms: steps.map((b) => histogramQuantile(this.histOf(b, 'ttft'), 0.5)),
      ttftP95Ms: steps.map((b) => histogramQuantile(this.histOf(b, 'ttft'), 0.95)),
      latency: {},
      tierMix: {},
      modelMix: {},
    };
    for (const name of tierNames) {
      const h = steps.map((b) => b.tiers[name]?.latency);
      const q = (p: number) => h.map((x) => (x ? histogramQuantile(x, p) : null));
      s.latency[name] = { p50: q(0.5), p95: q(0.95), p99: q(0.99) };
      s.tierMix[name] = steps.map((b) => perSec(b, b.tiers[name]?.requests ?? 0));
    }
    for (const name of modelNames) s.modelMix[name] = steps.map((b) => perSec(b, b.models[name] ?? 0));
    return s;
  }
}
