/**
 * `tollgate cache eval --pairs FILE.jsonl [--route NAME] [--precision P [--hard]] [--json]`:
 * measures the semantic cache's decision on the user's own labelled question pairs, with the
 * configured embedder, decision (`cache.semantic.decision`) and guard, for a route (or the
 * cache-wide settings): the curve over a sweep of thresholds, the configured threshold marked,
 * and the lowest threshold that reaches a precision. Evaluation logic: src/cache/eval.ts.
 *
 * Each pair alone in its own scope (cache a, ask b), decided as SemanticCache.lookup decides a
 * candidate: the guard's refusal is final; then the decision's score (`model`) or the embedder's
 * cosine similarity (`similarity`) against the threshold (plus, in `model` mode with the built-in
 * embedder, the cosine prefilter of that threshold). In `model` mode with another embedder the
 * embedder decides nothing for a pair alone in its scope (the decision computes its own built-in
 * cosine), so it is not called.
 *
 * Exit codes: 0 done; 1 bad input (the message names it); 2 the asked precision is not reached.
 */
import { readFileSync, statSync } from 'node:fs';
import type { RouteCacheConfig } from '../config/cache-schema.js';
import type { Config } from '../config/schema.js';
import { CacheDecision, DECISION_EMBEDDER_ID } from '../cache/decision.js';
import {
  type CurvePoint,
  DEFAULT_PAIRS_LIMITS,
  type Judge,
  measurePairs,
  PairsInputError,
  type TargetResult,
  countsOf,
  curve,
  hardestThird,
  parsePairs,
  sweep,
  thresholdFor,
} from '../cache/eval.js';
import { createHitGuard } from '../cache/guard.js';
import { createEmbedder } from '../cache/index.js';
import { DEFAULT_DECISION_THRESHOLD, DEFAULT_SEMANTIC_THRESHOLD } from '../cache/tuning.js';
import type { Embedder } from '../cache/types.js';
import type { ModelCatalog } from '../routing/catalog.js';
import { dot } from '../util/vector.js';
import { printTable } from './table.js';

export interface CacheEvalFlags {
  pairs?: string;
  route?: string;
  precision?: string;
  hard?: boolean;
  json?: boolean;
}

export const CACHE_USAGE = `usage: tollgate cache eval --pairs FILE.jsonl [--config FILE] [--route NAME] [--precision 0.98 [--hard]] [--json]

  Measures the semantic cache on your own labelled question pairs, with the configured embedder,
  decision (cache.semantic.decision) and guard: for each pair, a is cached and b asked, alone.
  FILE.jsonl: one {"a": "...", "b": "...", "duplicate": true|false} per line ("duplicate" left
  out: a positive pair). Prints duplicates reused, wrong answers on all non-duplicates and on the
  hardest third (most words in common), and precision at a 1:1 mix, over a sweep of thresholds
  (the configured one marked).
  --route NAME      a route or model's own settings (default: the cache-wide ones)
  --precision P     the lowest threshold whose precision at 1:1 is >= P (0..1), and the config line
  --hard            ... measured on the hardest non-duplicates instead of all of them
  --json            machine-readable results
  Exit codes: 0 done, 1 bad input, 2 the precision is not reached.`;

/** Thresholds shown in the table (the full sweep, 0.01 steps, is in --json). */
const SHOWN = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.82, 0.84, 0.86, 0.88, 0.9, 0.92, 0.94, 0.96, 0.98];
/** Texts per embedding request (deployment embedders: one upstream call each). */
const EMBED_BATCH = 64;
/** Below this many pairs of a class, the figures move by several points per pair: say so. */
const SMALL_SAMPLE = 100;

interface RouteSettings {
  /** Where the route's settings live: `routes.<name>` / `models.<name>`; undefined: the cache-wide ones. */
  path?: string;
  name?: string;
  cache?: RouteCacheConfig | undefined;
}

function resolveRoute(config: Config, name: string | undefined): RouteSettings {
  if (name === undefined) return {};
  for (const [r, route] of Object.entries(config.routes)) {
    if (r === name || route.aliases.includes(name)) return { path: `routes.${r}`, name: r, cache: route.cache };
  }
  for (const [m, model] of Object.entries(config.models)) {
    if (m === name || model.aliases.includes(name)) return { path: `models.${m}`, name: m, cache: model.cache };
  }
  const known = [...Object.keys(config.routes), ...Object.keys(config.models)];
  throw new Error(`--route: no route or model named '${name}' in the config (known: ${known.join(', ') || 'none'})`);
}

function precisionOf(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0 || n > 1) throw new Error(`--precision must be a number in (0, 1], e.g. 0.98; got '${value}'`);
  return n;
}

function readPairsFile(file: string): string {
  let size: number;
  try {
    size = statSync(file).size;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new Error(`--pairs ${file}: ${code === 'ENOENT' ? 'file not found' : (err as Error).message}`);
  }
  if (size > DEFAULT_PAIRS_LIMITS.maxBytes) throw new Error(`--pairs ${file}: ${size} bytes, over the limit of ${DEFAULT_PAIRS_LIMITS.maxBytes} (evaluate a sample)`);
  return readFileSync(file, 'utf8');
}

/** The configured embedder, and what embedding cost (deployment embedders). */
async function openEmbedder(config: Config, log: (line: string) => void): Promise<{ embedder: Embedder; close: () => Promise<void> }> {
  const cfg = config.cache.semantic.embedder;
  if (cfg.kind !== 'deployment') {
    const embedder = await createEmbedder(cfg, undefined as unknown as ModelCatalog); // the catalog is only read for deployment embedders
    return { embedder, close: () => embedder.close() };
  }
  const { ProviderRegistry } = await import('../providers/registry.js');
  const { ModelCatalog: Catalog } = await import('../routing/catalog.js');
  const providers = await ProviderRegistry.create(config);
  try {
    log(`warning: cache.semantic.embedder is the deployment model '${cfg.model}': embedding the pairs calls it upstream and costs its price (batches of ${EMBED_BATCH} texts)`);
    const embedder = await createEmbedder(cfg, new Catalog(config, providers));
    return {
      embedder,
      close: async () => {
        await embedder.close();
        await providers.close();
      },
    };
  } catch (err) {
    await providers.close();
    throw err;
  }
}

/** Vectors of the distinct texts, in batches; the cost of the calls (USD) when metered. */
async function embedAll(embedder: Embedder, texts: string[]): Promise<{ vectors: Map<string, Float32Array>; costUsd: number; tokens: number }> {
  const distinct = [...new Set(texts)];
  const vectors = new Map<string, Float32Array>();
  let costPico = 0;
  let tokens = 0;
  for (let i = 0; i < distinct.length; i += EMBED_BATCH) {
    const batch = distinct.slice(i, i + EMBED_BATCH);
    const res = await embedder.embed(batch);
    batch.forEach((t, k) => vectors.set(t, res.vectors[k]!));
    if (res.cost) {
      costPico += res.cost.costPico;
      tokens += res.cost.promptTokens;
    }
  }
  return { vectors, costUsd: costPico / 1e12, tokens };
}

const pct = (x: number, decimals = 1) => (Number.isNaN(x) ? 'n/a' : `${(100 * x).toFixed(decimals)}%`);
const share = (count: number, of: number, rate: number) => (of === 0 ? 'n/a' : `${pct(rate)} (${count}/${of})`);
const num = (t: number) => String(Math.round(t * 10_000) / 10_000);

export async function cacheCommand(config: Config, action: string | undefined, flags: CacheEvalFlags): Promise<void> {
  if (action !== 'eval') throw new Error(CACHE_USAGE);
  if (!flags.pairs) throw new Error(`tollgate cache eval needs --pairs FILE.jsonl\n\n${CACHE_USAGE}`);
  const target = precisionOf(flags.precision);
  if (flags.hard && target === undefined) throw new Error('--hard goes with --precision P (precision measured on the hardest non-duplicates)');
  const route = resolveRoute(config, flags.route);
  const s = config.cache.semantic;
  const mode = s.decision;
  const parsed = (() => {
    try {
      return parsePairs(readPairsFile(flags.pairs), { ...DEFAULT_PAIRS_LIMITS, maxQuestionChars: s.maxQuestionChars }, flags.pairs);
    } catch (err) {
      if (err instanceof PairsInputError) throw new Error(err.message);
      throw err;
    }
  })();
  const { pairs, unlabelled } = parsed;
  const { cutoff, hard } = hardestThird(pairs);
  const n = countsOf(pairs, hard);
  if (target !== undefined && (n.duplicates === 0 || n.nonDuplicates === 0)) {
    throw new Error(`--precision needs both duplicates and non-duplicates in ${flags.pairs} (it has ${n.duplicates} and ${n.nonDuplicates}): label some pairs "duplicate": false`);
  }

  // The settings the route's lookups use (CacheService.policy, createCache).
  const routeThreshold = route.cache?.semantic?.threshold;
  const configured = routeThreshold ?? s.threshold ?? (mode === 'model' ? DEFAULT_DECISION_THRESHOLD : DEFAULT_SEMANTIC_THRESHOLD);
  const thresholdSource =
    routeThreshold !== undefined ? `${route.path}.cache.semantic.threshold` : s.threshold !== undefined ? 'cache.semantic.threshold' : `the default of decision: ${mode}`;
  const notes: string[] = [];
  const stderr = (line: string) => void process.stderr.write(`${line}\n`);
  if (unlabelled > 0) notes.push(`${unlabelled} line(s) had no "duplicate" field: taken as duplicates (positive pairs).`);
  const semanticOn = config.cache.enabled && (route.cache?.semantic?.enabled ?? s.enabled);
  if (!semanticOn) notes.push(`The semantic cache is off for ${route.name ? `'${route.name}'` : 'the cache'} in this config: these figures are what it would do if on.`);
  if (n.duplicates < SMALL_SAMPLE || n.nonDuplicates < SMALL_SAMPLE) {
    notes.push(`Small sample (${n.duplicates} duplicates, ${n.nonDuplicates} non-duplicates): one pair moves a rate by ${pct(1 / Math.max(1, Math.min(n.duplicates || Infinity, n.nonDuplicates || Infinity)))}; label a few hundred pairs of your own traffic for a setting to rely on.`);
  }

  // Measure each pair as a lookup would.
  const guard = s.guard ? createHitGuard() : undefined;
  const decision = mode === 'model' ? new CacheDecision() : undefined;
  const needEmbedder = mode === 'similarity' || s.embedder.kind === 'builtin';
  let embedderId = s.embedder.kind === 'deployment' ? `deployment:${s.embedder.model}` : s.embedder.kind;
  let similarities: number[] = pairs.map(() => Number.NaN);
  let builtinSimilarity = false;
  if (needEmbedder) {
    const { embedder, close } = await openEmbedder(config, stderr);
    try {
      embedderId = embedder.id;
      builtinSimilarity = embedder.id === DECISION_EMBEDDER_ID;
      if (mode === 'similarity' || builtinSimilarity) {
        const { vectors, costUsd, tokens } = await embedAll(embedder, pairs.flatMap((p) => [p.a, p.b]));
        similarities = pairs.map((p) => dot(vectors.get(p.a)!, vectors.get(p.b)!));
        if (tokens > 0) notes.push(`Embedding the pairs cost $${costUsd.toFixed(6)} (${tokens} prompt tokens, ${embedderId}).`);
      }
    } finally {
      await close();
    }
  } else {
    notes.push(`decision: model with the ${s.embedder.kind} embedder: a pair alone in its scope is decided by the decision's score alone (it computes its own built-in cosine), so the embedder was not called.`);
  }
  const measures = measurePairs(pairs, similarities, { guard, decision, builtinSimilarity });
  const judge: Judge = { mode, ...(decision && builtinSimilarity ? { minCosineAt: (t: number) => decision.minCosineAt(t) } : {}) };
  const points = curve(pairs, measures, hard, judge, sweep([configured]));
  const result: TargetResult | undefined = target === undefined ? undefined : thresholdFor(points, target, flags.hard ? 'hardest' : 'all');
  const current = points.find((p) => p.threshold === Math.round(configured * 10_000) / 10_000)!;
  const configKey = `${route.path ? `${route.path}.` : ''}cache.semantic.threshold`;
  const scale = mode === 'model' ? 'score threshold' : 'cosine threshold';
  if (result && !result.point) process.exitCode = 2;

  if (flags.json) {
    const out = {
      file: flags.pairs,
      ...n,
      unlabelled,
      hardCutoff: cutoff,
      route: route.name ?? null,
      decision: mode,
      embedder: embedderId,
      guard: s.guard,
      configuredThreshold: configured,
      configuredThresholdFrom: thresholdSource,
      current,
      curve: points,
      target: result
        ? {
            precision: result.precision,
            on: result.on,
            reached: result.point !== undefined,
            threshold: result.point?.threshold ?? null,
            point: result.point ?? null,
            best: result.best ?? null,
            dipsAbove: result.dipsAbove,
            config: result.point ? `${configKey}: ${num(result.point.threshold)}` : null,
          }
        : null,
      notes,
    };
    process.stdout.write(`${JSON.stringify(out, (_k, v: unknown) => (typeof v === 'number' && Number.isNaN(v) ? null : v), 2)}\n`);
    return;
  }

  const print = (line = '') => void process.stdout.write(`${line}\n`);
  print(
    `Semantic cache on ${n.pairs} labelled pairs (${flags.pairs}): ${n.duplicates} duplicates, ${n.nonDuplicates} non-duplicates, of which the hardest third ${n.hardest}${Number.isNaN(cutoff) ? '' : ` (word overlap >= ${cutoff.toFixed(2)})`}.`,
  );
  print(
    `Settings${route.name ? ` of route '${route.name}'` : ''}: decision ${mode} (${scale}s), embedder ${embedderId}, guard ${s.guard ? 'on' : 'off'}, threshold ${num(configured)} (${thresholdSource}).`,
  );
  print('Each pair alone in its own scope: cache a, ask b. Precision at 1:1 = duplicates reused / (duplicates reused + wrong rate), as many duplicates as non-duplicates.');
  print();
  const marks = new Map<number, string[]>();
  const mark = (t: number, tag: string) => marks.set(t, [...(marks.get(t) ?? []), tag]);
  mark(current.threshold, 'current');
  if (result?.point) mark(result.point.threshold, `>= ${pct(result.precision)}`);
  if (result?.best) mark(result.best.threshold, 'best');
  const rows = points.filter((p) => SHOWN.includes(p.threshold) || marks.has(p.threshold));
  printTable(
    [scale, 'duplicates reused', 'wrong: all non-dup.', 'wrong: hardest', 'precision 1:1 (all)', 'precision 1:1 (hardest)'],
    rows.map((p) => [
      `${num(p.threshold)}${marks.has(p.threshold) ? ` (${marks.get(p.threshold)!.join(', ')})` : ''}`,
      share(p.reusedDuplicates, n.duplicates, p.reuseDup),
      share(p.wrongAllCount, n.nonDuplicates, p.wrongAll),
      share(p.wrongHardCount, n.hardest, p.wrongHard),
      pct(p.precisionAll),
      pct(p.precisionHard),
    ]),
  );
  print();
  if (result) {
    const on = result.on === 'all' ? 'all non-duplicates' : 'the hardest non-duplicates';
    const at = (p: CurvePoint) => `${pct(p.reuseDup)} of duplicates reused (${p.reusedDuplicates}/${n.duplicates}), precision at 1:1 ${pct(p.precisionAll)} (all) / ${pct(p.precisionHard)} (hardest)`;
    if (result.point) {
      print(`Precision >= ${pct(result.precision)} at 1:1 (${on}): from ${scale} ${num(result.point.threshold)}: ${at(result.point)}.`);
      if (result.dipsAbove.length > 0) print(`Note: higher thresholds fall below it again (${result.dipsAbove.slice(0, 5).map(num).join(', ')}${result.dipsAbove.length > 5 ? ', ...' : ''}): a noisy curve; more pairs make it steadier.`);
      print(`Set it: ${configKey}: ${num(result.point.threshold)}`);
    } else {
      print(`Precision >= ${pct(result.precision)} at 1:1 (${on}) is not reached at any ${scale} from 0.01 to 0.99.`);
      if (result.best) print(`Best: ${scale} ${num(result.best.threshold)}: ${at(result.best)}.`);
      else print('Nothing is reused at any threshold.');
    }
  }
  for (const note of notes) print(`Note: ${note}`);
}
