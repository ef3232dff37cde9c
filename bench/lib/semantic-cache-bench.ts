/**
 * The semantic cache in process, as the embedded gateway builds it (src/cache/index.ts): a
 * `SemanticCache` over a real `HnswVectorIndex` (default M, ef, flat limit; maxEntries the config's
 * default of 100,000 or the fill, whichever is larger), the `BuiltinEmbedder` (256 dimensions), the
 * default guard (`createHitGuard()`), the default decision (`CacheDecision`, `decision: model`), 4
 * candidates, threshold DEFAULT_DECISION_THRESHOLD (its score), and a
 * `SqliteSemanticStore` on a temporary file opened with `openDatabase` (WAL, every migration).
 *
 * 1. Fill: N generated questions (bench/lib/questions.ts) into ONE scope, each embedded and then
 *    stored with `SemanticCache.put` (SQLite row + index add), with a realistic serialized answer
 *    (~150-token chat completion). Reports entries/s and where the fill time went.
 * 2. Memory: RSS, V8 heap and external memory before and after the fill (after global.gc() when
 *    node runs with --expose-gc), the index's own estimate (`stats().bytes`) and the SQLite file.
 * 3. Lookups, for `seconds` after a warm-up: per query `embed(question)` then
 *    `lookup(scope, question, vector, threshold)`, timed apart (embed, index search, the rest of
 *    lookup: store reads and guard checks, and the total), over the mix of bench/lib/questions.ts.
 *
 * Run in a process of its own (the cache scenario does), so the memory figures are clean:
 *
 *   node --expose-gc --import tsx bench/lib/semantic-cache-bench.ts <entries> [seconds=10] [out.json]
 *
 * Prints the result as JSON (and writes it to out.json when given).
 */
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { type CachedAnswer, serializeAnswer } from '../../src/cache/answer.js';
import { BuiltinEmbedder } from '../../src/cache/embedders/builtin.js';
import { CacheDecision } from '../../src/cache/decision.js';
import { createHitGuard } from '../../src/cache/guard.js';
import { cacheIdentity, keyPrefix } from '../../src/cache/key.js';
import { SemanticCache } from '../../src/cache/semantic.js';
import { DEFAULT_DECISION_THRESHOLD, DEFAULT_SEMANTIC_THRESHOLD } from '../../src/cache/tuning.js';
import type { CacheFilter, Neighbour, SemanticChange, SemanticEntry, SemanticStore, VectorIndex } from '../../src/cache/types.js';
import { HnswVectorIndex, type VectorIndexStats } from '../../src/cache/vector-index.js';
import { createLogger } from '../../src/observability/logger.js';
import { openDatabase } from '../../src/storage/sqlite/database.js';
import { SqliteSemanticStore } from '../../src/storage/sqlite/semantic-cache.js';
import { cpuTimeMs, machineBusyMs } from './process.js';
import { MAX_QUESTIONS, nextQuery, question, QUERY_MIX, type QueryKind } from './questions.js';
import { prng } from './random.js';
import { Samples, summarize, type LatencySummary } from './stats.js';

/** TOLLGATE_BENCH_DECISION=similarity: the `similarity` mode (cosine threshold + guard) for comparison. */
const SIMILARITY_MODE = process.env.TOLLGATE_BENCH_DECISION === 'similarity';

/** The config's defaults (src/config/cache-schema.ts). */
export const CANDIDATES = 4;
export const DEFAULT_MAX_ENTRIES = 100_000;
const TENANT = 'default';
const ROUTE = 'sim-small';
const WARMUP_LOOKUPS = 1_000;
const MAX_LOOKUPS = 200_000;
const TTL_MS = 3_600_000;

export interface MemorySnapshot {
  rssMB: number;
  /** V8 heap: live objects after gc, and what V8 holds for the heap. */
  heapUsedMB: number;
  heapTotalMB: number;
  externalMB: number;
  arrayBuffersMB: number;
}

export interface KindResult {
  queries: number;
  /** Lookups that returned an entry. */
  served: number;
  /** Lookups that returned the entry of the query's source question. */
  servedSource: number;
  totalMs: LatencySummary;
}

export interface SemanticBenchResult {
  entries: number;
  seed: number;
  embedder: string;
  dimensions: number;
  threshold: number;
  candidates: number;
  maxEntries: number;
  gcAvailable: boolean;
  fill: {
    ms: number;
    entriesPerS: number;
    /** Time inside embed, the SQLite put and the index add, ms (sums). */
    embedMs: number;
    storeMs: number;
    indexAddMs: number;
    /** One index add (graph insert, plus the flat-to-graph migration while promoting). */
    indexAddUs: LatencySummary;
    avgQuestionChars: number;
    avgAnswerBytes: number;
  };
  memory: {
    beforeFill: MemorySnapshot;
    afterFill: MemorySnapshot;
    /** After minus before. */
    delta: MemorySnapshot;
    index: VectorIndexStats;
    /** The SQLite file after a TRUNCATE checkpoint (the semantic_cache table and empty others), and the WAL before it. */
    sqliteBytes: number;
    walBytesBeforeCheckpoint: number;
  };
  lookups: {
    count: number;
    seconds: number;
    warmup: number;
    /** Per lookup, µs: embed alone; index search alone; the rest of lookup (store reads, guard); embed + lookup. */
    embedUs: LatencySummary;
    searchUs: LatencySummary;
    restUs: LatencySummary;
    totalUs: LatencySummary;
    /** Store reads per lookup (a candidate at or above the threshold is read, then guarded). */
    storeReadsPerLookup: number;
    guardRejectionsPerLookup: number;
    byKind: Record<QueryKind, KindResult>;
    mix: Record<QueryKind, number>;
    /** CPU used by other processes during the lookups, in cores. */
    otherLoadCores: number;
  };
}

/* ------------------------------------------------------------------------------------------ */

/** The index with its searches and adds timed. */
class TimedIndex implements VectorIndex {
  lastSearchUs = 0;
  addUs: Samples = new Samples();
  constructor(readonly inner: HnswVectorIndex) {}
  add(scope: string, id: string, vector: Float32Array): string[] {
    const t = process.hrtime.bigint();
    const out = this.inner.add(scope, id, vector);
    this.addUs.push(Number(process.hrtime.bigint() - t) / 1e3);
    return out;
  }
  remove(id: string): void {
    this.inner.remove(id);
  }
  search(scope: string, vector: Float32Array, k: number): Neighbour[] {
    const t = process.hrtime.bigint();
    const out = this.inner.search(scope, vector, k);
    this.lastSearchUs += Number(process.hrtime.bigint() - t) / 1e3;
    return out;
  }
  has(id: string): boolean {
    return this.inner.has(id);
  }
  get size(): number {
    return this.inner.size;
  }
  clear(): void {
    this.inner.clear();
  }
}

/** The store with its reads and writes counted and timed. */
class CountedStore implements SemanticStore {
  gets = 0;
  putMs = 0;
  constructor(readonly inner: SqliteSemanticStore) {}
  async put(entry: SemanticEntry): Promise<string[]> {
    const t = performance.now();
    const evicted = await this.inner.put(entry);
    this.putMs += performance.now() - t;
    return evicted;
  }
  get(id: string): Promise<SemanticEntry | undefined> {
    this.gets++;
    return this.inner.get(id);
  }
  delete(ids: string[]): Promise<void> {
    return this.inner.delete(ids);
  }
  setThreshold(id: string, threshold: number | null): Promise<void> {
    return this.inner.setThreshold(id, threshold);
  }
  invalidate(filter: CacheFilter): Promise<string[]> {
    return this.inner.invalidate(filter);
  }
  scan(onBatch: (entries: SemanticEntry[]) => void | Promise<void>, batchSize?: number): Promise<void> {
    return this.inner.scan(onBatch, batchSize);
  }
  subscribe(listener: (change: SemanticChange) => void): () => void {
    return this.inner.subscribe(listener);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

/* ------------------------------------------------------------------------------------------ */

/** A UUID-shaped id (36 characters, like the gateway's randomUUID) that encodes the question's number. */
function entryId(i: number): string {
  return `${keyPrefix(TENANT, ROUTE)}00000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`;
}

function questionOf(id: string): number {
  return Number.parseInt(id.slice(-12), 16);
}

const FILLER = (
  'first open the settings page and check that your account has the right permissions before you ' +
  'continue the option is usually under advanced where you can also review the history of changes ' +
  'if the button is greyed out sign out and back in then try again most changes take effect at once ' +
  'but some may need a restart keep a copy of anything important before you start and note the ' +
  'version you are on in case you need to contact support they can restore a previous state within ' +
  'thirty days'
).split(' ');

/** A serialized answer like the gateway stores: a ~150-token chat completion (400-1,100 characters of text). */
function answerText(i: number, q: string, now: number): string {
  const rnd = prng(i * 2654435761);
  const words = 60 + Math.floor(rnd() * 110);
  const parts: string[] = [`Here is how to handle "${q.slice(0, 60)}":`];
  for (let w = 0; w < words; w++) parts.push(FILLER[Math.floor(rnd() * FILLER.length)] as string);
  const content = `${parts.join(' ')}.`;
  const usage = { prompt_tokens: 12 + Math.ceil(q.length / 4), completion_tokens: Math.ceil(content.length / 4), total_tokens: 0 };
  usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
  const answer: CachedAnswer = {
    v: 1,
    body: {
      id: `chatcmpl-${i.toString(36).padStart(12, '0')}`,
      object: 'chat.completion',
      created: Math.floor(now / 1000),
      model: ROUTE,
      choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
      usage,
    },
    model: ROUTE,
    deployment: 'upstream',
    usage,
    createdAt: now,
    semanticId: entryId(i),
  };
  return serializeAnswer(answer);
}

function gc(): boolean {
  const g = (globalThis as { gc?: () => void }).gc;
  if (!g) return false;
  g();
  g();
  return true;
}

function snapshot(): MemorySnapshot {
  const m = process.memoryUsage();
  const mb = (b: number) => b / 1_048_576;
  return { rssMB: mb(m.rss), heapUsedMB: mb(m.heapUsed), heapTotalMB: mb(m.heapTotal), externalMB: mb(m.external), arrayBuffersMB: mb(m.arrayBuffers) };
}

function fileSize(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

export async function benchSemanticCache(opts: { entries: number; seconds: number; seed?: number; dir?: string }): Promise<SemanticBenchResult> {
  const n = opts.entries;
  if (!Number.isInteger(n) || n < 1 || n > MAX_QUESTIONS) throw new RangeError(`entries must be an integer in 1..${MAX_QUESTIONS}, got ${n}`);
  const seed = opts.seed ?? 20261122;
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'tollgate-bench-semantic-'));
  const dbFile = join(dir, 'tollgate.db');
  const ownDir = opts.dir === undefined;
  const gcAvailable = gc();

  const db = openDatabase(dbFile);
  const store = new CountedStore(new SqliteSemanticStore(db));
  const embedder = new BuiltinEmbedder();
  const maxEntries = Math.max(DEFAULT_MAX_ENTRIES, n);
  const index = new TimedIndex(new HnswVectorIndex({ dimensions: embedder.dimensions, maxEntries }));
  index.addUs = new Samples(); // grows as it goes; preallocated below so the fill's memory does not include it
  for (let i = 0; i < n; i++) index.addUs.push(0);
  index.addUs.length = 0;
  const semantic = new SemanticCache({ embedder, index, store, guard: createHitGuard(), decision: SIMILARITY_MODE ? undefined : new CacheDecision(), candidates: CANDIDATES, log: createLogger('silent') });
  await semantic.start();
  await semantic.loaded;
  const scope = cacheIdentity(TENANT, ROUTE, { model: ROUTE, messages: [{ role: 'user', content: 'x' }], temperature: 0, max_tokens: 512 }, embedder.id).scope as string;
  const threshold = SIMILARITY_MODE ? DEFAULT_SEMANTIC_THRESHOLD : DEFAULT_DECISION_THRESHOLD;
  gc();
  const beforeFill = snapshot();

  // 1. Fill.
  let embedMs = 0;
  let questionChars = 0;
  let answerBytes = 0;
  const fillStart = performance.now();
  for (let i = 0; i < n; i++) {
    const q = question(seed, i);
    const now = Date.now();
    const t = performance.now();
    const { vector } = await semantic.embed(q);
    embedMs += performance.now() - t;
    const answer = answerText(i, q, now);
    questionChars += q.length;
    answerBytes += answer.length;
    await semantic.put({ id: entryId(i), scope, tenantId: TENANT, route: ROUTE, embedder: embedder.id, question: q, vector, answer, createdAt: now, expiresAt: now + TTL_MS, threshold: null });
  }
  const fillMs = performance.now() - fillStart;
  const indexAddMs = index.addUs.values().reduce((a, b) => a + b, 0) / 1000;
  const indexAddUs = summarize(index.addUs.values());
  index.addUs = new Samples();

  // 2. Memory.
  gc();
  const afterFill = snapshot();
  const walBytesBeforeCheckpoint = fileSize(`${dbFile}-wal`);
  db.pragma('wal_checkpoint(TRUNCATE)');
  const sqliteBytes = fileSize(dbFile);
  const stats = index.inner.stats();
  if (index.size !== n) throw new Error(`the index holds ${index.size} entries after a fill of ${n}`);

  // 3. Lookups.
  const rnd = prng(seed ^ 0x5eed);
  const embedUs = new Samples();
  const searchUs = new Samples();
  const restUs = new Samples();
  const totalUs = new Samples();
  const kinds: QueryKind[] = ['exact', 'paraphrase', 'near-miss', 'unrelated'];
  const perKind = Object.fromEntries(kinds.map((k) => [k, { queries: 0, served: 0, servedSource: 0, samples: new Samples() }])) as Record<
    QueryKind,
    { queries: number; served: number; servedSource: number; samples: Samples }
  >;
  let gets0 = 0;
  let rejections0 = 0;
  let count = 0;
  let deadline = Number.POSITIVE_INFINITY;
  let busy0 = 0;
  let self0 = 0;
  let wall0 = 0;
  for (let i = -WARMUP_LOOKUPS; count < MAX_LOOKUPS; i++) {
    if (i === 0) {
      gets0 = store.gets;
      rejections0 = semantic.guardRejections;
      deadline = performance.now() + opts.seconds * 1000;
      busy0 = machineBusyMs();
      self0 = cpuTimeMs('self');
      wall0 = performance.now();
    }
    if (i >= 0 && performance.now() >= deadline) break;
    const query = nextQuery(seed, n, rnd);
    index.lastSearchUs = 0;
    const t0 = process.hrtime.bigint();
    const { vector } = await semantic.embed(query.text);
    const t1 = process.hrtime.bigint();
    const hit = await semantic.lookup(scope, query.text, vector, threshold);
    const t2 = process.hrtime.bigint();
    if (i < 0) continue;
    count++;
    const e = Number(t1 - t0) / 1e3;
    const l = Number(t2 - t1) / 1e3;
    embedUs.push(e);
    searchUs.push(index.lastSearchUs);
    restUs.push(l - index.lastSearchUs);
    totalUs.push(e + l);
    const k = perKind[query.kind];
    k.queries++;
    k.samples.push((e + l) / 1000);
    if (hit) {
      k.served++;
      if (query.source !== undefined && questionOf(hit.entry.id) === query.source) k.servedSource++;
    }
  }
  const wallMs = performance.now() - wall0;
  const otherLoadCores = Math.max(0, machineBusyMs() - busy0 - (cpuTimeMs('self') - self0)) / wallMs;
  const storeReads = store.gets - gets0;
  const rejections = semantic.guardRejections - rejections0;

  await semantic.close();
  if (ownDir) rmSync(dir, { recursive: true, force: true });

  const delta: MemorySnapshot = {
    rssMB: afterFill.rssMB - beforeFill.rssMB,
    heapUsedMB: afterFill.heapUsedMB - beforeFill.heapUsedMB,
    heapTotalMB: afterFill.heapTotalMB - beforeFill.heapTotalMB,
    externalMB: afterFill.externalMB - beforeFill.externalMB,
    arrayBuffersMB: afterFill.arrayBuffersMB - beforeFill.arrayBuffersMB,
  };
  return {
    entries: n,
    seed,
    embedder: embedder.id,
    dimensions: embedder.dimensions,
    threshold,
    candidates: CANDIDATES,
    maxEntries,
    gcAvailable,
    fill: {
      ms: fillMs,
      entriesPerS: (n / fillMs) * 1000,
      embedMs,
      storeMs: store.putMs,
      indexAddMs,
      indexAddUs,
      avgQuestionChars: questionChars / n,
      avgAnswerBytes: answerBytes / n,
    },
    memory: { beforeFill, afterFill, delta, index: stats, sqliteBytes, walBytesBeforeCheckpoint },
    lookups: {
      count,
      seconds: wallMs / 1000,
      warmup: WARMUP_LOOKUPS,
      embedUs: summarize(embedUs.values()),
      searchUs: summarize(searchUs.values()),
      restUs: summarize(restUs.values()),
      totalUs: summarize(totalUs.values()),
      storeReadsPerLookup: storeReads / Math.max(1, count),
      guardRejectionsPerLookup: rejections / Math.max(1, count),
      byKind: Object.fromEntries(
        kinds.map((kind) => {
          const k = perKind[kind];
          return [kind, { queries: k.queries, served: k.served, servedSource: k.servedSource, totalMs: summarize(k.samples.values()) }];
        }),
      ) as Record<QueryKind, KindResult>,
      mix: { ...QUERY_MIX },
      otherLoadCores,
    },
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const [entriesArg = '10000', secondsArg = '10', out] = process.argv.slice(2);
  const result = await benchSemanticCache({ entries: Number(entriesArg), seconds: Number(secondsArg) });
  const json = JSON.stringify(result);
  if (out) writeFileSync(out, json);
  process.stdout.write(`${json}\n`);
}
