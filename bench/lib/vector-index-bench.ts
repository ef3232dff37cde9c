/**
 * Micro-benchmark of the semantic cache's vector index (src/cache/vector-index.ts), in process:
 * build time, search latency (k = 5), recall@1 against brute force, memory.
 *
 * Data: clustered unit vectors from a seeded PRNG (entries/100 cluster centres, each vector its
 * centre plus gaussian noise of norm 1: ~0.7 cosine to the centre); each query is a noisy copy of
 * a stored vector (noise of norm 0.35: ~0.94 cosine to it, like a paraphrase worth a cache hit).
 * Recall@1 is measured on the first 500 queries (brute force over the whole scope is slow).
 *
 *   npx tsx bench/lib/vector-index-bench.ts <entries> <dimensions> [queries=1000] [scopes=1]
 *
 * Run with `node --expose-gc` (e.g. NODE_OPTIONS=--expose-gc) for a steadier RSS delta.
 */
import { fileURLToPath } from 'node:url';

import { HnswVectorIndex, memoryEstimateBytes } from '../../src/cache/vector-index.js';
import { prng } from './random.js';

export interface VectorIndexBenchOptions {
  entries: number;
  dimensions: number;
  queries: number;
  /** Entries are spread round-robin over this many scopes (default 1: one big scope). */
  scopes?: number;
  seed?: number;
  m?: number;
  efConstruction?: number;
  efSearch?: number;
}

export interface VectorIndexBenchResult {
  buildMs: number;
  p50Us: number;
  p99Us: number;
  recallAt1: number;
  bytesPerEntry: number;
  rssDeltaMb: number;
}

const RECALL_QUERIES = 500;
const WARMUP_QUERIES = 50;
const CLUSTER_NOISE = 1.0;
const QUERY_NOISE = 0.35;


/** Writes into out[o..o+d) `base` (or zero) plus gaussian noise of norm ~`noise`, normalized. */
function noisyUnit(rnd: () => number, out: Float32Array, o: number, d: number, base: Float32Array | undefined, bo: number, noise: number): void {
  const sigma = noise / Math.sqrt(d);
  let norm = 0;
  for (let i = 0; i < d; i++) {
    const u = rnd() || 1e-12;
    const g = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rnd());
    const x = (base ? base[bo + i]! : 0) + sigma * g;
    out[o + i] = x;
    norm += x * x;
  }
  const inv = 1 / Math.sqrt(norm);
  for (let i = 0; i < d; i++) out[o + i]! *= inv;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0;
}

function rssMb(): number {
  (globalThis as { gc?: () => void }).gc?.();
  return process.memoryUsage().rss / 1_048_576;
}

export async function benchVectorIndex(opts: VectorIndexBenchOptions): Promise<VectorIndexBenchResult> {
  const { entries: n, dimensions: d, queries } = opts;
  const scopes = Math.max(1, opts.scopes ?? 1);
  const rnd = prng(opts.seed ?? 20240601);

  const clusters = Math.max(10, Math.floor(n / 100));
  const centres = new Float32Array(clusters * d);
  for (let c = 0; c < clusters; c++) noisyUnit(rnd, centres, c * d, d, undefined, 0, 1);
  const data = new Float32Array(n * d);
  for (let i = 0; i < n; i++) noisyUnit(rnd, data, i * d, d, centres, Math.floor(rnd() * clusters) * d, CLUSTER_NOISE);
  const scopeOf = (i: number): string => `scope-${i % scopes}`;

  const index = new HnswVectorIndex({
    dimensions: d,
    maxEntries: n,
    ...(opts.m ? { m: opts.m } : {}),
    ...(opts.efConstruction ? { efConstruction: opts.efConstruction } : {}),
    ...(opts.efSearch ? { efSearch: opts.efSearch } : {}),
  });
  const rss0 = rssMb();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    index.add(scopeOf(i), `e${i}`, data.subarray(i * d, i * d + d));
    if ((i & 8191) === 8191) await new Promise((r) => setImmediate(r)); // let timers/IO breathe
  }
  const buildMs = performance.now() - t0;
  const rssDeltaMb = rssMb() - rss0;

  const q = new Float32Array(d);
  const lat: number[] = [];
  let checked = 0;
  let hits = 0;
  for (let qi = -WARMUP_QUERIES; qi < queries; qi++) {
    const src = Math.floor(rnd() * n);
    noisyUnit(rnd, q, 0, d, data, src * d, QUERY_NOISE);
    const scope = scopeOf(src);
    const s = performance.now();
    const res = index.search(scope, q, 5);
    const us = (performance.now() - s) * 1000;
    if (qi < 0) continue;
    lat.push(us);
    if (qi < RECALL_QUERIES) {
      let best = -2;
      let bestI = -1;
      for (let i = src % scopes; i < n; i += scopes) {
        let dot = 0;
        const o = i * d;
        for (let j = 0; j < d; j++) dot += data[o + j]! * q[j]!;
        if (dot > best) [best, bestI] = [dot, i];
      }
      checked++;
      if (res[0]?.id === `e${bestI}`) hits++;
    }
  }
  lat.sort((a, b) => a - b);
  return {
    buildMs: Math.round(buildMs),
    p50Us: Math.round(percentile(lat, 0.5)),
    p99Us: Math.round(percentile(lat, 0.99)),
    recallAt1: checked ? hits / checked : 0,
    bytesPerEntry: Math.round(memoryEstimateBytes(index) / n),
    rssDeltaMb: Math.round(rssDeltaMb * 10) / 10,
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const [entries = 100_000, dimensions = 256, queries = 1000, scopes = 1] = process.argv.slice(2).map(Number);
  const result = await benchVectorIndex({ entries, dimensions, queries, scopes });
  console.log(JSON.stringify({ entries, dimensions, queries, scopes, ...result }));
}
