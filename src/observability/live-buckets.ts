/**
 * The per-second buckets of live statistics (src/observability/live-stats.ts): their shape (also
 * the wire format between processes), fixed-bucket histograms and their quantiles, summing,
 * checking what a peer sent, and the one-hour ring that holds them.
 */

/** Upper bounds (ms) of the latency and time-to-first-token histograms; one more slot for larger. */
export const LATENCY_BOUNDS_MS: readonly number[] = [
  5, 10, 25, 50, 75, 100, 150, 250, 400, 600, 1000, 1500, 2500, 4000, 6000, 10_000, 15_000, 30_000, 60_000, 120_000,
];
export const SLOTS = LATENCY_BOUNDS_MS.length + 1;
export const HOUR_SEC = 3600;
/** Distinct tiers or models kept per second; the rest are counted as `other`. */
export const MAX_KEYS = 64;

/** One tier's share of one second. */
export interface TierCell {
  requests: number;
  errors: number;
  /** Latency histogram: counts per LATENCY_BOUNDS_MS slot (+1 for larger). */
  latency: number[];
  /** Time-to-first-token histogram (streams only), same slots. */
  ttft: number[];
}

/** One second of traffic (of one process, or summed over several). Amounts are pico-dollars. */
export interface LiveBucket {
  /** Epoch second. */
  t: number;
  requests: number;
  /** Status >= 500 (but not 499) or a stream that ended with an error event. */
  errors: number;
  /** Other failed requests: 4xx other than 402/429, clients that went away (499). */
  failures: number;
  /** Budget (402) and rate-limit (429) refusals. */
  refusals: number;
  /** Answered after more than one attempt, or by a deployment not first in its chain. */
  fallbacks: number;
  promptTokens: number;
  completionTokens: number;
  costPico: number;
  savedPico: number;
  cache: Record<string, number>;
  tiers: Record<string, TierCell>;
  /** Requests by the model that served them. */
  models: Record<string, number>;
}

export const emptyBucket = (t: number): LiveBucket => ({
  t,
  requests: 0,
  errors: 0,
  failures: 0,
  refusals: 0,
  fallbacks: 0,
  promptTokens: 0,
  completionTokens: 0,
  costPico: 0,
  savedPico: 0,
  cache: {},
  tiers: {},
  models: {},
});

export function slotOf(ms: number): number {
  let i = 0;
  while (i < LATENCY_BOUNDS_MS.length && ms > LATENCY_BOUNDS_MS[i]!) i++;
  return i;
}

export function capKey(map: Record<string, unknown>, key: string): string {
  return key in map || Object.keys(map).length < MAX_KEYS ? key : 'other';
}

/** The q-quantile (0..1) of a histogram, interpolated within its slot; null when empty. */
export function histogramQuantile(counts: readonly number[], q: number): number | null {
  let total = 0;
  for (const c of counts) total += c;
  if (total === 0) return null;
  const rank = Math.min(1, Math.max(0, q)) * total;
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i] ?? 0;
    if (c > 0 && seen + c >= rank) {
      const lo = i === 0 ? 0 : LATENCY_BOUNDS_MS[i - 1]!;
      const hi = LATENCY_BOUNDS_MS[i] ?? lo * 2; // the open slot: report up to twice the last bound
      return lo + (hi - lo) * Math.max(0, Math.min(1, (rank - seen) / c));
    }
    seen += c;
  }
  return LATENCY_BOUNDS_MS[LATENCY_BOUNDS_MS.length - 1]!;
}

export function addInto(target: number[], from: readonly number[]): void {
  for (let i = 0; i < SLOTS; i++) target[i] = (target[i] ?? 0) + (from[i] ?? 0);
}

export function addRecord(target: Record<string, number>, from: Record<string, number>): void {
  for (const [k, v] of Object.entries(from)) target[k] = (target[k] ?? 0) + v;
}

/** The number fields of a bucket (totals of the second). */
const TOTALS = ['requests', 'errors', 'failures', 'refusals', 'fallbacks', 'promptTokens', 'completionTokens', 'costPico', 'savedPico'] as const;

/** Sums `from` into `into` (same or different seconds: the caller decides). */
export function mergeBucket(into: LiveBucket, from: LiveBucket): void {
  for (const k of TOTALS) into[k] += from[k];
  addRecord(into.cache, from.cache);
  addRecord(into.models, from.models);
  for (const [name, cell] of Object.entries(from.tiers)) {
    const c = (into.tiers[name] ??= { requests: 0, errors: 0, latency: new Array<number>(SLOTS).fill(0), ttft: new Array<number>(SLOTS).fill(0) });
    c.requests += cell.requests;
    c.errors += cell.errors;
    addInto(c.latency, cell.latency);
    addInto(c.ttft, cell.ttft);
  }
}

const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : 0);
const counts = (v: unknown): Record<string, number> => {
  const out: Record<string, number> = {};
  if (v && typeof v === 'object') for (const [k, x] of Object.entries(v).slice(0, MAX_KEYS + 1)) out[k] = num(x);
  return out;
};
const hist = (v: unknown): number[] => Array.from({ length: SLOTS }, (_, i) => num(Array.isArray(v) ? v[i] : 0));

/** A bucket received from a peer, checked field by field (anything malformed counts as 0). */
export function parseBucket(v: unknown): LiveBucket | undefined {
  if (!v || typeof v !== 'object') return undefined;
  const o = v as Record<string, unknown>;
  if (typeof o['t'] !== 'number' || !Number.isInteger(o['t'])) return undefined;
  const b = emptyBucket(o['t']);
  for (const k of TOTALS) b[k] = num(o[k]);
  b.cache = counts(o['cache']);
  b.models = counts(o['models']);
  if (o['tiers'] && typeof o['tiers'] === 'object') {
    for (const [name, cell] of Object.entries(o['tiers'] as Record<string, unknown>).slice(0, MAX_KEYS + 1)) {
      const c = (cell ?? {}) as Record<string, unknown>;
      b.tiers[name] = { requests: num(c['requests']), errors: num(c['errors']), latency: hist(c['latency']), ttft: hist(c['ttft']) };
    }
  }
  return b;
}

/** A ring of per-second buckets over the last hour. */
export class Ring {
  private readonly slots: Array<LiveBucket | undefined> = new Array(HOUR_SEC);

  /** The bucket of second `t`, created (replacing an hour-old one) when `create`. */
  at(t: number, create: true): LiveBucket;
  at(t: number, create?: false): LiveBucket | undefined;
  at(t: number, create = false): LiveBucket | undefined {
    const i = t % HOUR_SEC;
    const b = this.slots[i];
    if (b && b.t === t) return b;
    if (!create) return undefined;
    const fresh = emptyBucket(t);
    this.slots[i] = fresh;
    return fresh;
  }

  put(b: LiveBucket): void {
    this.slots[b.t % HOUR_SEC] = b;
  }
}

export const CACHE_SERVED = ['hit', 'semantic', 'coalesced'];
export const CACHE_LOOKED_UP = [...CACHE_SERVED, 'miss', 'stale'];


export function hitRate(cache: Record<string, number>): number | null {
  let served = 0;
  let looked = 0;
  for (const k of CACHE_LOOKED_UP) looked += cache[k] ?? 0;
  for (const k of CACHE_SERVED) served += cache[k] ?? 0;
  return looked === 0 ? null : served / looked;
}
