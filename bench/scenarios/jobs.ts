/**
 * Async jobs: throughput and submit latency, embedded and distributed; and the embeddings
 * micro-batcher's upstream request reduction and added latency.
 *
 * One `tollgate sim --latency 0 --tps 0` upstream (instant answers), gateways `tollgate start`
 * with the cache off:
 *   Job throughput (targets take turns, `BENCH_JOBS_REPEATS` runs each):
 *     embedded        SQLite, one process
 *     distributed-1   PostgreSQL + Redis on loopback (a schema and key prefix of its own), one process
 *     distributed-2   the same with two processes sharing one queue (clients alternate between them)
 *   every process with `jobs.concurrency` 64. A run submits N jobs (5,000) through a few
 *   concurrent clients as fast as they go (submit latency p50/p99, submits/s) while the workers
 *   run them, and reads `tollgate_jobs_finished_total` of every process until all finished
 *   (completed jobs/s from the first submit to the last completion). Checks: every job succeeded,
 *   one simulator call per job.
 *   Embeddings: two embedded gateways, batching-on (embeddings.batching defaults: 5 ms window, 64
 *   per batch) and batching-off, measured in turns at an evenly paced 500 req/s of single-input
 *   /v1/embeddings requests, 20 s per target: simulator calls per client request (the reduction)
 *   and client latency on vs off (the added latency).
 *
 * Environment: BENCH_JOBS_COUNT (5000), BENCH_JOBS_CLIENTS (8), BENCH_JOBS_CONCURRENCY (64),
 * BENCH_JOBS_REPEATS (3), BENCH_JOBS_DISTRIBUTED (0 skips the distributed targets),
 * BENCH_JOBS_TWO_PROCESSES (0 skips distributed-2), BENCH_JOBS_TIMEOUT_SECONDS (120, per run),
 * BENCH_EMBED_RATE (500), BENCH_EMBED_SECONDS (20, per target), BENCH_REDIS_URL,
 * BENCH_POSTGRES_URL.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'undici';
import type { HttpRequestSpec } from '../lib/load.js';
import { cpuTimeMs, cpuTimesMs, machineBusyMs, memoryMB, pidsNamed, waitForIdle } from '../lib/process.js';
import { positiveEnv, reportFields, scenarioResult, type BenchSettings, type Scenario, type ScenarioReport } from '../lib/scenario.js';
import { msBetween, Samples, summarize, type LatencySummary } from '../lib/stats.js';
import { DEFAULT_POSTGRES_URL, DEFAULT_REDIS_URL, deleteRedisKeys, dropSchema, redact, reserveStores, uniqueStoreNames } from '../lib/stores.js';
import { fmt } from '../lib/table.js';
import { checkRequest, childEnv, launchGateway, MAX_TOKENS, PROMPT, simTotal, startSimulator, tollgateCli, type Gateway, type HttpTarget } from '../lib/tollgate.js';
import { pacedTurns, pacedWarmUp, rounds, runRounds, settleTargets } from '../lib/turns.js';
import {
  buildReport,
  type EmbedRun,
  type EmbedTargetInfo,
  type EmbedTargetName,
  type JobsChecks,
  type JobsSettings,
  type ThroughputRun,
  type ThroughputTargetInfo,
  type ThroughputTargetName,
} from './jobs-report.js';

const STORE_PROCESSES = ['redis-server', 'postgres'];
const EMBED_INPUT = 'The quick brown fox jumps over the lazy dog near the river bank.';
const MODELS = {
  'sim-small': { type: 'chat', deployments: [{ provider: 'upstream' }], price: { input: 0.15, output: 0.6 } },
  'sim-embed': { type: 'embedding', deployments: [{ provider: 'upstream' }], price: { input: 0.02 } },
};

function jobsSettings(date: Date): JobsSettings {
  const env = process.env;
  const names = uniqueStoreNames('jobs', date);
  return {
    jobs: Math.round(positiveEnv('BENCH_JOBS_COUNT', 5_000)),
    clients: Math.round(positiveEnv('BENCH_JOBS_CLIENTS', 8)),
    concurrency: Math.round(positiveEnv('BENCH_JOBS_CONCURRENCY', 64)),
    repeats: Math.round(positiveEnv('BENCH_JOBS_REPEATS', 3)),
    warmupJobs: 500,
    timeoutS: positiveEnv('BENCH_JOBS_TIMEOUT_SECONDS', 120),
    pollMs: 50,
    distributed: env.BENCH_JOBS_DISTRIBUTED !== '0',
    twoProcesses: env.BENCH_JOBS_TWO_PROCESSES !== '0',
    redisUrl: env.BENCH_REDIS_URL || DEFAULT_REDIS_URL,
    postgresUrl: env.BENCH_POSTGRES_URL || DEFAULT_POSTGRES_URL,
    ...names,
    embedRate: positiveEnv('BENCH_EMBED_RATE', 500),
    embedSeconds: positiveEnv('BENCH_EMBED_SECONDS', 20),
    embedConnections: 50,
    embedLeadInS: 0.5,
    embedWindowMs: 5,
    embedMaxBatchSize: 64,
  };
}

// ---------------------------------------------------------------------------------------------
// Gateways

interface ThroughputTarget {
  info: ThroughputTargetInfo;
  procs: HttpTarget[];
  apiKey: string;
  schema?: string;
}

async function startThroughputTargets(s: BenchSettings, js: JobsSettings, tmp: string, sim: HttpTarget, out: ThroughputTarget[]): Promise<void> {
  const defs: { name: ThroughputTargetName; processes: number; distributed: boolean; description: string }[] = [
    { name: 'embedded', processes: 1, distributed: false, description: 'SQLite, one process' },
    ...(js.distributed ? [{ name: 'distributed-1' as const, processes: 1, distributed: true, description: 'PostgreSQL + Redis, one process' }] : []),
    ...(js.distributed && js.twoProcesses
      ? [{ name: 'distributed-2' as const, processes: 2, distributed: true, description: 'PostgreSQL + Redis, two processes sharing the queue' }]
      : []),
  ];
  for (const def of defs) {
    const tag = def.name === 'distributed-1' ? 'd1' : 'd2';
    const schema = `${js.postgresSchema}_${tag}`;
    const procs: Gateway[] = [];
    for (let p = 0; p < def.processes; p++) {
      const dir = join(tmp, `${def.name}-${p}`);
      const storage = { kind: 'distributed', redisUrl: js.redisUrl, postgresUrl: js.postgresUrl, postgresSchema: schema, redisPrefix: `${js.redisPrefix}${tag}:`, dir: join(dir, 'state') };
      const jobs = { concurrency: js.concurrency, ...(def.distributed ? { webhooks: { signingSecret: 'bench-jobs-signing-secret-0123456789' } } : {}) };
      procs.push(
        await launchGateway({
          name: def.processes > 1 ? `${def.name}-${p + 1}` : def.name,
          root: s.root,
          dir,
          simOrigin: sim.origin,
          log: s.log,
          ...(def.distributed ? { storage, note: ` (PostgreSQL schema ${schema})` } : {}),
          extra: { models: MODELS, cache: { enabled: false }, jobs },
          // The processes of a target share one storage: the first one's key serves them all.
          keys: p === 0 ? 'api' : 'none',
        }),
      );
    }
    out.push({
      info: { name: def.name, description: def.description, processes: def.processes, idleRss: procs.map((g) => g.idleRss) },
      procs,
      apiKey: procs[0]?.apiKey ?? '',
      ...(def.distributed ? { schema } : {}),
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Job throughput

const JOB_BODY = JSON.stringify({ body: { model: 'sim-small', messages: [{ role: 'user', content: PROMPT }], max_tokens: MAX_TOKENS } });

interface Counters {
  finished: number;
  succeeded: number;
  waitSum: number;
  waitCount: number;
}

/** Sums a metric's samples (all label sets, or those containing `match`) in a Prometheus text page. */
function sumMetric(text: string, name: string, match?: string): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!(line.startsWith(`${name}{`) || line.startsWith(`${name} `))) continue;
    if (match && !line.includes(match)) continue;
    const v = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(v)) sum += v;
  }
  return sum;
}

async function readCounters(origins: string[]): Promise<Counters> {
  const pages = await Promise.all(origins.map((o) => fetch(`${o}/metrics`, { signal: AbortSignal.timeout(5_000) }).then((r) => r.text())));
  const out: Counters = { finished: 0, succeeded: 0, waitSum: 0, waitCount: 0 };
  for (const text of pages) {
    out.finished += sumMetric(text, 'tollgate_jobs_finished_total');
    out.succeeded += sumMetric(text, 'tollgate_jobs_finished_total', 'status="succeeded"');
    out.waitSum += sumMetric(text, 'tollgate_job_queue_wait_seconds_sum');
    out.waitCount += sumMetric(text, 'tollgate_job_queue_wait_seconds_count');
  }
  return out;
}

interface SubmitResult {
  latencies: Float64Array;
  accepted: number;
  errors: number;
  firstSent: bigint;
  lastAnswered: bigint;
  errorSample?: string;
}

/** Submits `n` jobs through `clients` concurrent clients (one connection each), alternating between origins. */
async function submitJobs(origins: string[], apiKey: string, n: number, clients: number): Promise<SubmitResult> {
  const perOrigin = Math.ceil(clients / origins.length);
  const pools = origins.map((o) => new Pool(o, { connections: perOrigin, pipelining: 1, keepAliveTimeout: 60_000, headersTimeout: 30_000, bodyTimeout: 30_000 }));
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${apiKey}` };
  const latencies = new Samples();
  let accepted = 0;
  let errors = 0;
  let errorSample: string | undefined;
  let next = 0;
  let firstSent = 0n;
  let lastAnswered = 0n;
  try {
    await Promise.all(
      Array.from({ length: clients }, async (_, k) => {
        const pool = pools[k % pools.length] as Pool;
        for (let i = next++; i < n; i = next++) {
          const sent = process.hrtime.bigint();
          if (firstSent === 0n) firstSent = sent;
          try {
            const res = await pool.request({ path: '/v1/jobs', method: 'POST', headers, body: JOB_BODY });
            const text = await res.body.text();
            const end = process.hrtime.bigint();
            lastAnswered = end;
            if (res.statusCode === 202) {
              accepted++;
              latencies.push(msBetween(sent, end));
            } else {
              errors++;
              errorSample ??= `HTTP ${res.statusCode}: ${text.slice(0, 300)}`;
            }
          } catch (err) {
            errors++;
            lastAnswered = process.hrtime.bigint();
            errorSample ??= err instanceof Error ? err.message : String(err);
          }
        }
      }),
    );
  } finally {
    await Promise.all(pools.map((p) => p.close()));
  }
  return { latencies: latencies.values().slice(), accepted, errors, firstSent, lastAnswered, ...(errorSample ? { errorSample } : {}) };
}

/**
 * Reads the counters every `pollMs` until `want()` more jobs finished than `base` (or the timeout);
 * records (seconds since `start`, jobs finished) at each read.
 */
async function waitForFinished(
  origins: string[],
  base: Counters,
  want: () => number,
  opts: { pollMs: number; timeoutMs: number; start: bigint; timeline: [number, number][] },
): Promise<{ drained: boolean; at: bigint }> {
  const deadline = Date.now() + opts.timeoutMs;
  for (;;) {
    const c = await readCounters(origins);
    const at = process.hrtime.bigint();
    const done = c.finished - base.finished;
    opts.timeline.push([Math.round(msBetween(opts.start, at)) / 1000, done]);
    if (done >= want()) return { drained: true, at };
    if (Date.now() > deadline) return { drained: false, at };
    await new Promise((r) => setTimeout(r, opts.pollMs));
  }
}

async function preflightJob(t: ThroughputTarget): Promise<void> {
  const origin = t.procs[0]!.origin;
  const res = await fetch(`${origin}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${t.apiKey}` }, body: JOB_BODY, signal: AbortSignal.timeout(10_000) });
  const job = (await res.json()) as { id?: string; error?: unknown };
  if (res.status !== 202 || !job.id) throw new Error(`${t.info.name}: POST /v1/jobs answered HTTP ${res.status}: ${JSON.stringify(job).slice(0, 500)}\n${t.procs[0]!.proc.output()}`);
  const deadline = Date.now() + 30_000;
  for (;;) {
    const got = (await fetch(`${origin}/v1/jobs/${job.id}`, { headers: { authorization: `Bearer ${t.apiKey}` } }).then((r) => r.json())) as { status: string; result?: { object?: string }; error?: unknown };
    if (got.status === 'succeeded' && got.result?.object === 'chat.completion') return;
    if (!['queued', 'running'].includes(got.status)) throw new Error(`${t.info.name}: the pre-flight job ended ${got.status}: ${JSON.stringify(got.error)}`);
    if (Date.now() > deadline) throw new Error(`${t.info.name}: the pre-flight job is still ${got.status} after 30 s`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Submits `n` jobs and waits for them all to finish; measures what the run used. Returns the run and its submit latencies. */
async function throughputRun(t: ThroughputTarget, js: JobsSettings, n: number, repeat: number, simTarget: HttpTarget): Promise<{ run: ThroughputRun; latencies: Float64Array }> {
  const origins = t.procs.map((p) => p.origin);
  const pids = t.procs.map((p) => p.proc.pid);
  await waitForIdle([...pids, simTarget.proc.pid], { maxMs: 5_000, windowMs: 200, threshold: 0.05 });
  const base = await readCounters(origins);
  const simBefore = await simTotal(simTarget.origin);
  const storesBefore = t.schema ? cpuTimesMs(pidsNamed(STORE_PROCESSES)) : undefined;
  const cpuBefore = { gw: pids.map((p) => cpuTimeMs(p)), sim: cpuTimeMs(simTarget.proc.pid), self: cpuTimeMs('self'), busy: machineBusyMs() };
  const start = process.hrtime.bigint();

  const timeline: [number, number][] = [];
  let accepted: number | undefined;
  let finishedAtSubmitEnd = 0;
  const submitting = submitJobs(origins, t.apiKey, n, js.clients).then(async (r) => {
    accepted = r.accepted;
    finishedAtSubmitEnd = (await readCounters(origins)).finished - base.finished;
    return r;
  });
  // Until every submit is answered, wait for n; then for those accepted (a refused submit never finishes).
  const waiting = waitForFinished(origins, base, () => accepted ?? n, { pollMs: js.pollMs, timeoutMs: js.timeoutS * 1000, start, timeline });
  const [sub, fin] = await Promise.all([submitting, waiting]);
  // What the run left behind (the last ledger writes) is charged to it.
  await waitForIdle([...pids, simTarget.proc.pid], { maxMs: 3_000, windowMs: 100 });
  const cpuAfter = { gw: pids.map((p) => cpuTimeMs(p)), sim: cpuTimeMs(simTarget.proc.pid), self: cpuTimeMs('self'), busy: machineBusyMs() };
  const wallMs = msBetween(start, process.hrtime.bigint());
  let storesMs: number | undefined;
  if (storesBefore) {
    storesMs = 0;
    // A process that appeared during the run (a new connection's backend) counts whole.
    for (const [pid, ms] of cpuTimesMs(pidsNamed(STORE_PROCESSES))) storesMs += ms - (storesBefore.get(pid) ?? 0);
  }
  const upstreamCalls = (await simTotal(simTarget.origin)) - simBefore;
  const last = await readCounters(origins);
  const gwMs = cpuAfter.gw.map((v, i) => v - (cpuBefore.gw[i] ?? 0));
  const gwTotal = gwMs.reduce((a, b) => a + b, 0);
  const d = { sim: cpuAfter.sim - cpuBefore.sim, self: cpuAfter.self - cpuBefore.self, busy: cpuAfter.busy - cpuBefore.busy };
  const finished = last.finished - base.finished;
  const submitS = msBetween(sub.firstSent, sub.lastAnswered) / 1000;
  const drainS = msBetween(sub.firstSent, fin.at) / 1000;
  const waitCount = last.waitCount - base.waitCount;
  const run: ThroughputRun = {
    target: t.info.name,
    repeat,
    jobs: n,
    accepted: sub.accepted,
    submitErrors: sub.errors,
    submitS,
    submitsPerS: sub.accepted / submitS,
    submitLatencyMs: summarize(sub.latencies),
    drained: fin.drained && sub.errors === 0,
    finished,
    succeeded: last.succeeded - base.succeeded,
    drainS,
    jobsPerS: finished / drainS,
    finishedAtSubmitEnd,
    upstreamCalls,
    meanQueueWaitMs: waitCount > 0 ? ((last.waitSum - base.waitSum) / waitCount) * 1000 : undefined,
    cpu: {
      gatewayUsPerJob: (gwTotal * 1000) / Math.max(1, finished),
      perProcessMs: gwMs,
      gatewayCores: gwMs.map((v) => v / wallMs),
      simUsPerJob: (d.sim * 1000) / Math.max(1, finished),
      loadGenUsPerJob: (d.self * 1000) / Math.max(1, finished),
      ...(storesMs !== undefined ? { storesUsPerJob: (storesMs * 1000) / Math.max(1, finished) } : {}),
      otherCores: Math.max(0, d.busy - d.self - d.sim - gwTotal - (storesMs ?? 0)) / wallMs,
    },
    timeline,
    ...(sub.errorSample ? { errorSample: sub.errorSample } : {}),
  };
  return { run, latencies: sub.latencies };
}

// ---------------------------------------------------------------------------------------------
// Embeddings micro-batching

interface EmbedGateway extends Gateway {
  name: EmbedTargetName;
  info: EmbedTargetInfo;
}

async function startEmbedGateways(s: BenchSettings, js: JobsSettings, tmp: string, sim: HttpTarget, out: EmbedGateway[]): Promise<void> {
  const defs: { name: EmbedTargetName; enabled: boolean; description: string }[] = [
    { name: 'batching-off', enabled: false, description: 'embedded, embeddings.batching.enabled: false' },
    { name: 'batching-on', enabled: true, description: `embedded, embeddings.batching: {windowMs: ${js.embedWindowMs}, maxBatchSize: ${js.embedMaxBatchSize}}` },
  ];
  for (const def of defs) {
    const extra = { models: MODELS, cache: { enabled: false }, embeddings: { batching: { enabled: def.enabled, windowMs: js.embedWindowMs, maxBatchSize: js.embedMaxBatchSize } } };
    const g = await launchGateway({ name: def.name, root: s.root, dir: join(tmp, def.name), simOrigin: sim.origin, log: s.log, extra });
    out.push({ ...g, name: def.name, info: { name: def.name, description: def.description, idleRss: g.idleRss, requestsSent: 0 } });
  }
}

function embedRequest(g: EmbedGateway): HttpRequestSpec {
  return {
    origin: g.origin,
    path: '/v1/embeddings',
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${g.apiKey}` },
    body: JSON.stringify({ model: 'sim-embed', input: EMBED_INPUT }),
    verify: (b) => b.trimEnd().endsWith('}'),
  };
}

async function batchCounters(origin: string): Promise<{ calls: number; requests: number }> {
  const text = await fetch(`${origin}/metrics`, { signal: AbortSignal.timeout(5_000) }).then((r) => r.text());
  return { calls: sumMetric(text, 'tollgate_embedding_batch_calls_total'), requests: sumMetric(text, 'tollgate_embedding_batched_requests_total') };
}

// ---------------------------------------------------------------------------------------------

export const jobsScenario: Scenario = {
  name: 'jobs',
  description: 'Async jobs: throughput and submit latency (embedded, distributed); embeddings micro-batching at 500 req/s (upstream reduction, added latency)',
  async run(s: BenchSettings): Promise<ScenarioReport> {
    const js = jobsSettings(s.date);
    const schemas = js.distributed ? [`${js.postgresSchema}_d1`, ...(js.twoProcesses ? [`${js.postgresSchema}_d2`] : [])] : [];
    const unregister = js.distributed ? await reserveStores({ ...js, schemas, skip: 'BENCH_JOBS_DISTRIBUTED=0 to skip the distributed targets' }) : () => {};
    const tmp = mkdtempSync(join(tmpdir(), 'tollgate-bench-jobs-'));
    const checks: JobsChecks = { errors: [] };
    const runs: ThroughputRun[] = [];
    const pooled: Partial<Record<ThroughputTargetName, Samples>> = {};
    const targets: ThroughputTarget[] = [];
    const embedGateways: EmbedGateway[] = [];
    const embedRuns: EmbedRun[] = [];
    const embedRounds = rounds(js.embedSeconds, 1);
    let sim: HttpTarget | undefined;
    try {
      s.log('starting simulator');
      sim = await startSimulator({ cli: tollgateCli(s.root), cwd: tmp, env: childEnv() });
      const simTarget = sim;

      // --- Job throughput
      try {
        await startThroughputTargets(s, js, tmp, simTarget, targets);
        for (const t of targets) {
          await preflightJob(t);
          s.log(`warm-up ${t.info.name}: ${js.warmupJobs} jobs`);
          const { run: w } = await throughputRun(t, js, js.warmupJobs, -1, simTarget);
          if (!w.drained) s.log(`  warm-up of ${t.info.name}: ${w.finished}/${w.jobs} finished, ${w.submitErrors} submit errors${w.errorSample ? ` (${w.errorSample})` : ''}`);
        }
        await runRounds(targets.length, js.repeats, async (i, repeat) => {
          const t = targets[i] as ThroughputTarget;
          const { run: r, latencies } = await throughputRun(t, js, js.jobs, repeat, simTarget);
          runs.push(r);
          const samples = (pooled[t.info.name] ??= new Samples());
          for (const v of latencies) samples.push(v);
          s.log(
            `${t.info.name.padEnd(14)} run ${repeat + 1}: ${r.accepted}/${r.jobs} accepted in ${fmt(r.submitS)} s (${fmt(r.submitsPerS, 0)}/s, submit p50 ${fmt(r.submitLatencyMs.p50)} p99 ${fmt(r.submitLatencyMs.p99)} ms); ` +
              `${r.finished} finished in ${fmt(r.drainS)} s (${fmt(r.jobsPerS, 0)} jobs/s); ${r.upstreamCalls} upstream calls; other load ${fmt(r.cpu.otherCores)} cores`,
          );
        });
        for (const t of targets) t.info.rssAfter = t.procs.map((p) => memoryMB(p.proc.pid));
      } finally {
        for (const t of [...targets].reverse()) for (const p of [...t.procs].reverse()) await p.proc.stop(10_000);
      }

      // --- Embeddings micro-batching
      await startEmbedGateways(s, js, tmp, simTarget, embedGateways);
      for (const g of embedGateways) {
        await checkRequest(embedRequest(g), g.proc, g.name);
        g.info.requestsSent++;
      }
      for (const g of embedGateways) {
        g.info.requestsSent += await pacedWarmUp({ name: g.name, requests: [embedRequest(g)], rate: js.embedRate, connections: js.embedConnections, seconds: s.warmupSeconds, log: s.log });
      }
      await settleTargets([simTarget.proc.pid, ...embedGateways.map((g) => g.proc.pid)], s.log, 'embeddings targets');
      s.log(`embeddings: ${js.embedRate} req/s, ${embedRounds.count} rounds of ${fmt(embedRounds.sliceS)} s per target`);
      const results = await pacedTurns(
        embedGateways.map((g) => ({ name: g.name, pid: g.proc.pid, request: embedRequest(g) })),
        { label: 'embed', log: s.log, sim: { origin: simTarget.origin, pid: simTarget.proc.pid }, rate: js.embedRate, connections: js.embedConnections, rounds: embedRounds, leadInS: js.embedLeadInS },
      );
      for (const [i, g] of embedGateways.entries()) {
        const { load, cpu, upstream, upstreamCallsPerRequest } = results[i]!;
        g.info.requestsSent += load.sent;
        embedRuns.push({ target: g.name, load, cpu, upstream, upstreamCallsPerRequest });
      }
      for (const g of embedGateways) {
        g.info.rssAfter = memoryMB(g.proc.pid);
        try {
          const c = await batchCounters(g.origin);
          g.info.batchCalls = c.calls;
          g.info.batchedRequests = c.requests;
        } catch (err) {
          checks.errors.push(`reading ${g.name}'s /metrics failed: ${err instanceof Error ? err.message : String(err)}`);
        }
      }
    } finally {
      for (const g of [...embedGateways].reverse()) await g.proc.stop(10_000);
      await sim?.proc.stop();
      if (js.distributed) {
        try {
          checks.redisKeysDeleted = await deleteRedisKeys(js.redisUrl, js.redisPrefix);
          checks.schemasDropped = [];
          for (const schema of schemas) if (await dropSchema(js.postgresUrl, schema)) checks.schemasDropped.push(schema);
          unregister();
          s.log(`clean-up: Redis keys deleted: ${checks.redisKeysDeleted}; PostgreSQL schemas dropped: ${checks.schemasDropped.join(', ') || 'none'}`);
        } catch (err) {
          checks.errors.push(`clean-up of ${js.postgresSchema}* / ${js.redisPrefix} failed: ${err instanceof Error ? err.message : String(err)}`);
        }
      }
      rmSync(tmp, { recursive: true, force: true });
    }

    const pooledSubmit: Partial<Record<ThroughputTargetName, LatencySummary>> = {};
    for (const [name, samples] of Object.entries(pooled)) pooledSubmit[name as ThroughputTargetName] = summarize(samples.values());
    const report = buildReport({
      runs,
      pooledSubmit,
      throughputTargets: targets.map((t) => t.info),
      embedRuns,
      embedTargets: embedGateways.map((g) => g.info),
      checks,
      jobs: js,
      settings: s,
      embedRounds,
      prompt: PROMPT,
      maxTokens: MAX_TOKENS,
    });
    return scenarioResult('jobs', s, report, {
      settings: {
        ...js,
        redisUrl: redact(js.redisUrl),
        postgresUrl: redact(js.postgresUrl),
        seconds: s.seconds,
        warmupSeconds: s.warmupSeconds,
        embedRounds,
        maxTokens: MAX_TOKENS,
        prompt: PROMPT,
        embedInput: EMBED_INPUT,
      },
      throughputTargets: targets.map((t) => t.info),
      runs,
      embedTargets: embedGateways.map((g) => g.info),
      embedRuns,
      ...reportFields(report, { checks }),
    });
  },
};
