/**
 * The cache: exact-hit throughput and latency over HTTP, semantic lookup latency in process at
 * 10k and 100k entries in one scope, memory per 100k entries.
 *
 * 1. Exact hits, end to end: `tollgate start` (embedded, default config: cache on, mode
 *    deterministic, semantic on with the built-in embedder; API-key auth, info logging to
 *    /dev/null, metrics on) in front of `tollgate sim --latency 0 --tps 0`. One request with
 *    `temperature: 0` warms the cache (the next answer must say `x-tollgate-cache: hit`), then
 *    autocannon (closed loop, pipelining 1, in this process: "autocannon included") sends that same
 *    request at several connection counts, in turns, in 2 s slices; plus the same request with
 *    `stream: true` (a replayed hit) at one connection count. Every answer's `x-tollgate-cache`
 *    is counted, and the simulator's request count must not move.
 *    Targets: >= 10,000 req/s with p99 <= 5 ms, at the connection count that best meets both
 *    (latency grows with connections by Little's law: mean = connections / throughput).
 * 2. Semantic lookups, in process (bench/lib/semantic-cache-bench.ts, one child process per size,
 *    run alone once the gateway has stopped): a SemanticCache over HnswVectorIndex, the built-in
 *    embedder, the default guard and a SqliteSemanticStore on a temp file, filled with N generated
 *    questions in one scope; embed + lookup timed per query over a mix of exact repeats,
 *    paraphrases, near misses and unrelated questions. Target: p99 of embed + lookup <= 3 ms.
 * 3. Memory: the same child's RSS and heap before and after the fill (with global.gc), the index's
 *    own estimate and the SQLite file, per 100k entries.
 *
 * Environment: BENCH_CACHE_CONNECTIONS (10,25,50), BENCH_CACHE_STREAM_CONNECTIONS (25; 0 skips the
 * stream row), BENCH_CACHE_SEMANTIC_ENTRIES (10000,100000; 0 skips the semantic runs), BENCH_PROFILE (1: the gateway under
 * --cpu-prof, and a "where the CPU goes" section).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runAutocannon } from '../lib/autocannon.js';
import { mainThreadProfile, summarizeCpuProfile } from '../lib/cpuprofile.js';
import { longStretches } from '../lib/cpuprofile-stretches.js';
import type { HttpRequestSpec } from '../lib/load.js';
import { machineBusyMs, memoryMB, startProcess } from '../lib/process.js';
import { BENCH_DIR, profileDir } from '../lib/results.js';
import { reportFields, scenarioResult, type BenchSettings, type Scenario, type ScenarioReport } from '../lib/scenario.js';
import type { SemanticBenchResult } from '../lib/semantic-cache-bench.js';
import { fmt } from '../lib/table.js';
import { chatRequest, checkRequest, childEnv, launchGateway, MAX_TOKENS, PROMPT, simTotal, startSimulator, tollgateCli, type Gateway, type HttpTarget, type Mode } from '../lib/tollgate.js';
import { describeLoad, runRounds, settleTargets, TurnMeter, warmUp } from '../lib/turns.js';
import { buildReport, TARGETS, type CacheProfile, type CacheSettings, type GatewayInfo, type HitRun, type Preflight, type SemanticRun } from './cache-report.js';

const CACHE_HEADER = 'x-tollgate-cache';
/** A child filling 100k entries takes ~1 min; anything past this is stuck. */
const SEMANTIC_CHILD_TIMEOUT_MS = 15 * 60_000;

function list(name: string, dflt: number[], allowZero = false): number[] {
  const v = process.env[name];
  if (v === undefined || v.trim() === '') return dflt;
  const out = v.split(',').map((x) => Number(x.trim()));
  for (const n of out) if (!Number.isInteger(n) || n < (allowZero ? 0 : 1)) throw new Error(`${name}: '${v}' is not a list of ${allowZero ? 'non-negative' : 'positive'} integers`);
  return out;
}

function cacheSettings(): CacheSettings {
  const stream = list('BENCH_CACHE_STREAM_CONNECTIONS', [25], true);
  if (stream.length !== 1) throw new Error('BENCH_CACHE_STREAM_CONNECTIONS takes one number');
  return {
    connections: list('BENCH_CACHE_CONNECTIONS', [10, 25, 50]),
    streamConnections: stream[0] as number,
    semanticEntries: list('BENCH_CACHE_SEMANTIC_ENTRIES', [10_000, 100_000], true).filter((n) => n > 0),
    warmupConnections: 50,
    profile: process.env.BENCH_PROFILE === '1',
    temperature: 0,
  };
}

interface Variant {
  name: string;
  mode: Mode;
  connections: number;
}

/** The request every variant sends: the core scenario's chat request with `temperature: 0` (cacheable in mode deterministic). */
function hitRequest(g: HttpTarget, mode: Mode, apiKey: string, c: CacheSettings): HttpRequestSpec {
  return chatRequest(g.origin, mode, apiKey, { temperature: c.temperature });
}

/** Counts the values of x-tollgate-cache in raw header lists. */
function headerCounter(): { counts: Record<string, number>; onHeaders: (raw: string[]) => void } {
  const counts: Record<string, number> = {};
  return {
    counts,
    onHeaders(raw) {
      let value = '(none)';
      for (let i = 0; i + 1 < raw.length; i += 2) {
        const name = raw[i] as string;
        if (name.length === CACHE_HEADER.length && name.toLowerCase() === CACHE_HEADER) {
          value = raw[i + 1] as string;
          break;
        }
      }
      counts[value] = (counts[value] ?? 0) + 1;
    },
  };
}

/** The first request must be a miss (nothing cached yet), and the next ones hits, JSON and stream. */
async function preflight(g: HttpTarget, apiKey: string, c: CacheSettings, sim: HttpTarget): Promise<Preflight> {
  const simBefore = await simTotal(sim.origin);
  const json = hitRequest(g, 'json', apiKey, c);
  const first = (await checkRequest(json, g.proc, 'tollgate (first request)')).get(CACHE_HEADER);
  // The answer is stored once complete, just after it is sent: give it a moment.
  let second: string | null = null;
  for (let attempt = 0; attempt < 20 && second !== 'hit'; attempt++) {
    if (attempt > 0) await new Promise((r) => setTimeout(r, 50));
    second = (await checkRequest(json, g.proc, 'tollgate (second request)')).get(CACHE_HEADER);
  }
  const stream = (await checkRequest(hitRequest(g, 'stream', apiKey, c), g.proc, 'tollgate (stream)')).get(CACHE_HEADER);
  const upstreamCalls = (await simTotal(sim.origin)) - simBefore;
  const out: Preflight = { first, second, stream, upstreamCalls };
  if (second !== 'hit' || stream !== 'hit') {
    throw new Error(`the cache did not answer: first request x-tollgate-cache: ${first}, then ${second} (JSON) and ${stream} (stream); expected hit. Is the cache on in the default config?`);
  }
  return out;
}

/** Runs bench/lib/semantic-cache-bench.ts in a child process (clean memory figures) and reads its JSON. */
async function runSemantic(s: BenchSettings, entries: number, tmp: string): Promise<SemanticRun> {
  const out = join(tmp, `semantic-${entries}.json`);
  const script = join(BENCH_DIR, 'lib', 'semantic-cache-bench.ts');
  const busy0 = machineBusyMs();
  const t0 = Date.now();
  const proc = startProcess({
    name: `semantic-cache-bench ${entries}`,
    command: process.execPath,
    args: ['--expose-gc', '--import', 'tsx', script, String(entries), String(s.seconds), out],
    cwd: s.root,
    env: childEnv(),
  });
  const timer = setTimeout(() => void proc.stop(), SEMANTIC_CHILD_TIMEOUT_MS);
  await proc.exited;
  clearTimeout(timer);
  if (proc.exit?.code !== 0 || !existsSync(out)) {
    throw new Error(`semantic cache bench (${entries} entries) failed (${proc.exit?.signal ?? `exit ${proc.exit?.code}`}):\n${proc.output()}`.trimEnd());
  }
  const result = JSON.parse(readFileSync(out, 'utf8')) as SemanticBenchResult;
  return { result, wallS: (Date.now() - t0) / 1000, machineBusyCores: (machineBusyMs() - busy0) / Math.max(1, Date.now() - t0) };
}

export const cacheScenario: Scenario = {
  name: 'cache',
  description: 'Exact-hit throughput and latency over HTTP; semantic lookup latency at 10k and 100k entries in one scope; memory per 100k entries',
  async run(s: BenchSettings): Promise<ScenarioReport> {
    const c = cacheSettings();
    const tmp = mkdtempSync(join(tmpdir(), 'tollgate-bench-cache-'));
    const variants: Variant[] = [
      ...c.connections.map((n) => ({ name: `json, ${n} connections`, mode: 'json' as Mode, connections: n })),
      ...(c.streamConnections > 0 ? [{ name: `stream, ${c.streamConnections} connections`, mode: 'stream' as Mode, connections: c.streamConnections }] : []),
    ];
    // autocannon checks its duration once a second: whole-second slices.
    const sliceS = s.seconds >= 4 ? 2 : 1;
    const rounds = { count: Math.max(1, Math.round(s.seconds / sliceS)), sliceS };
    const runs: HitRun[] = [];
    const semantic: SemanticRun[] = [];
    let sim: HttpTarget | undefined;
    let gateway: Gateway | undefined;
    let info: GatewayInfo | undefined;
    let pre: Preflight | undefined;
    const profiles = c.profile ? profileDir('cache', s.date) : undefined;
    try {
      s.log('starting simulator');
      sim = await startSimulator({ cli: tollgateCli(s.root), cwd: tmp, env: childEnv() });
      const simT = sim;
      gateway = await launchGateway({ name: 'tollgate', root: s.root, dir: tmp, simOrigin: simT.origin, log: s.log, cpuProfileDir: profiles });
      const g = gateway;
      const { apiKey } = g;
      info = { idleRss: g.idleRss, requestsSent: 0 };
      const gi = info;

      pre = await preflight(g, apiKey, c, simT);
      gi.requestsSent += 3;
      s.log(`pre-flight: first request x-tollgate-cache: ${pre.first}, then ${pre.second} (JSON), ${pre.stream} (stream); ${pre.upstreamCalls} upstream call(s)`);

      const simBeforeWarmup = await simTotal(simT.origin);
      const w = await warmUp({
        name: 'tollgate',
        requests: variants.some((v) => v.mode === 'stream') ? [hitRequest(g, 'json', apiKey, c), hitRequest(g, 'stream', apiKey, c)] : [hitRequest(g, 'json', apiKey, c)],
        connections: c.warmupConnections,
        seconds: s.warmupSeconds,
        what: variants.some((v) => v.mode === 'stream') ? 'the cached request, JSON and SSE alternating' : 'the cached request',
        log: s.log,
      });
      gi.requestsSent += w.sent;
      gi.warmupUpstreamCalls = (await simTotal(simT.origin)) - simBeforeWarmup;
      await settleTargets([simT.proc.pid, g.proc.pid], s.log);

      s.log(`exact hits: ${rounds.count} rounds of ${rounds.sliceS} s per variant (${variants.map((v) => v.name).join('; ')})`);
      const meters = variants.map(() => new TurnMeter({ targetPid: g.proc.pid, sim: { origin: simT.origin, pid: simT.proc.pid } }));
      const counters = variants.map(() => headerCounter());
      await runRounds(variants.length, rounds.count, (i) => {
        const v = variants[i] as Variant;
        const request = hitRequest(g, v.mode, apiKey, c);
        return (meters[i] as TurnMeter).measure(() => runAutocannon({ request, connections: v.connections, durationS: rounds.sliceS, onHeaders: (counters[i] as ReturnType<typeof headerCounter>).onHeaders }));
      });
      for (const [i, v] of variants.entries()) {
        const { load, cpu, upstream } = (meters[i] as TurnMeter).result();
        const run: HitRun = { variant: v.name, mode: v.mode, connections: v.connections, load, cpu, upstream, cacheHeader: (counters[i] as ReturnType<typeof headerCounter>).counts };
        gi.requestsSent += load.sent;
        runs.push(run);
        s.log(`${v.name.padEnd(24)} ${describeLoad(load, cpu)}  hits ${fmt(hitShare(run) * 100, 2)}%  upstream calls ${upstream.calls}`);
      }
      gi.rssAfter = memoryMB(g.proc.pid);
    } finally {
      await gateway?.proc.stop(c.profile ? 30_000 : 10_000);
      await sim?.proc.stop();
    }

    // The semantic runs, alone on the machine (the gateway and simulator have stopped).
    try {
      for (const entries of c.semanticEntries) {
        s.log(`semantic cache, in process: filling ${entries.toLocaleString('en-US')} entries into one scope, then ${s.seconds} s of lookups (child process)`);
        const r = await runSemantic(s, entries, tmp);
        semantic.push(r);
        const l = r.result.lookups;
        s.log(
          `  fill ${fmt(r.result.fill.ms / 1000, 1)} s (${fmt(r.result.fill.entriesPerS, 0)} entries/s); lookups ${l.count}: total p50 ${fmt(l.totalUs.p50 / 1000, 3)} p99 ${fmt(l.totalUs.p99 / 1000, 3)} p99.9 ${fmt(l.totalUs.p999 / 1000, 3)} ms ` +
            `(embed p99 ${fmt(l.embedUs.p99 / 1000, 3)}, search p99 ${fmt(l.searchUs.p99 / 1000, 3)}); RSS +${fmt(r.result.memory.delta.rssMB, 1)} MB; other load ${fmt(l.otherLoadCores)} cores`,
        );
      }
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }

    const profile = profiles ? readProfile(profiles, s.log) : undefined;
    if (!info || !pre) throw new Error('cache: the gateway did not start');
    const report = buildReport({ runs, semantic, gateway: info, preflight: pre, cache: c, settings: s, rounds, maxTokens: MAX_TOKENS, profile, profileDir: profiles });
    return scenarioResult('cache', s, report, {
      settings: { ...c, seconds: s.seconds, warmupSeconds: s.warmupSeconds, rounds, maxTokens: MAX_TOKENS, prompt: PROMPT },
      goals: TARGETS,
      preflight: pre,
      gateway: info,
      exactHits: runs,
      semantic,
      ...reportFields(report),
      ...(profiles ? { profileDir: profiles } : {}),
      ...(profile ? { profile } : {}),
    });
  },
};

function hitShare(r: HitRun): number {
  const total = Object.values(r.cacheHeader).reduce((a, b) => a + b, 0);
  return total ? (r.cacheHeader.hit ?? 0) / total : Number.NaN;
}

/**
 * The main thread's profile. Node writes one per thread (CPU.<date>.<time>.<pid>.<thread>.<seq>):
 * the gateway's SQLite writer thread has its own, and the last file by name is that one.
 */
function readProfile(dir: string, log: (l: string) => void): CacheProfile | undefined {
  const file = mainThreadProfile(dir);
  if (!file) {
    log(`tollgate wrote no .cpuprofile to ${dir} (did it exit cleanly on SIGTERM?)`);
    return undefined;
  }
  const path = join(dir, file);
  return {
    summary: summarizeCpuProfile(path, 25),
    // Start-up (first 3 s: module loading, schema compilation) left out; node internals too (they hold whatever runs in them).
    stretches: longStretches(path, { skipFirstMs: 3_000, top: 15, filter: (n) => !n.includes(' node:') && !/^\((root|idle|program)\)/.test(n) }),
  };
}
