/**
 * The jobs scenario's report: job throughput per target (submit latency, submits/s, completion
 * jobs/s, upstream calls per job, CPU per job), the embeddings micro-batcher's upstream request
 * reduction and added latency at a paced rate, verdicts, caveats, and the report document
 * (lib/report.ts).
 */
import { difference, median } from '../lib/compare.js';
import { closing, column, heading, list, methodDoc, section, tableOf } from '../lib/report.js';
import { addedColumns, otherLoadCaveat, runColumns as col, runTable, shortfallCaveats } from '../lib/run-report.js';
import type { BenchSettings, BuiltReport, Verdict } from '../lib/scenario.js';
import type { LatencySummary } from '../lib/stats.js';
import { fmt, fmtDelta } from '../lib/table.js';
import type { MeasuredRun } from '../lib/turns.js';

export type ThroughputTargetName = 'embedded' | 'distributed-1' | 'distributed-2';
export type EmbedTargetName = 'batching-off' | 'batching-on';
export const EMBED_BASELINE: EmbedTargetName = 'batching-off';
export const EMBED_BATCHED: EmbedTargetName = 'batching-on';

export interface JobsSettings {
  /** Jobs submitted per measured run. */
  jobs: number;
  /** Concurrent submitting clients (one keep-alive connection each). */
  clients: number;
  /** jobs.concurrency of every gateway process. */
  concurrency: number;
  /** Measured runs per throughput target (targets take turns). */
  repeats: number;
  /** Jobs submitted (and drained) per target before measuring. */
  warmupJobs: number;
  /** How long a run may take to drain before it is reported incomplete, s. */
  timeoutS: number;
  /** How often the completion counters are read, ms. */
  pollMs: number;
  distributed: boolean;
  twoProcesses: boolean;
  redisUrl: string;
  postgresUrl: string;
  postgresSchema: string;
  redisPrefix: string;
  /** Embeddings: paced rate, seconds per target, connections, lead-in, window and batch size of the batcher. */
  embedRate: number;
  embedSeconds: number;
  embedConnections: number;
  embedLeadInS: number;
  embedWindowMs: number;
  embedMaxBatchSize: number;
}

export interface ThroughputTargetInfo {
  name: ThroughputTargetName;
  description: string;
  /** Gateway processes (1 or 2). */
  processes: number;
  idleRss: { rssMB: number; peakRssMB: number }[];
  rssAfter?: { rssMB: number; peakRssMB: number }[];
}

export interface ThroughputRun {
  target: ThroughputTargetName;
  repeat: number;
  jobs: number;
  /** Submits answered 202. */
  accepted: number;
  /** Submits answered otherwise, or not at all. */
  submitErrors: number;
  /** First submit sent to last submit answered, s. */
  submitS: number;
  submitsPerS: number;
  /** Client side: writing POST /v1/jobs to the last byte of its 202, ms. */
  submitLatencyMs: LatencySummary;
  /** Every job finished before the timeout. */
  drained: boolean;
  /** Deltas of tollgate_jobs_finished_total over the run (all processes). */
  finished: number;
  succeeded: number;
  /** First submit sent to the first counter read that showed every job finished, s. */
  drainS: number;
  /** Jobs finished per second from the first submit to the last completion. */
  jobsPerS: number;
  /** Jobs finished when the last submit was answered (workers keeping up with submits?). */
  finishedAtSubmitEnd: number;
  /** Simulator requests during the run (expect one per job). */
  upstreamCalls: number;
  /** Mean of tollgate_job_queue_wait_seconds over the run's jobs, ms. */
  meanQueueWaitMs: number | undefined;
  cpu: {
    /** Every gateway process's CPU time per job, µs. */
    gatewayUsPerJob: number;
    /** Each process's share of that CPU, ms in all. */
    perProcessMs: number[];
    /** Each process's CPU time ÷ the run's wall time: near 1, the process was CPU-bound (Node runs JS on one core). */
    gatewayCores: number[];
    simUsPerJob: number;
    /** This process (submit clients and counter reads), µs per job. */
    loadGenUsPerJob: number;
    /** Every redis-server and postgres process's CPU per job (distributed; may serve others too), µs. */
    storesUsPerJob?: number;
    /** CPU of everything else on the machine during the run, cores. */
    otherCores: number;
  };
  /** (seconds since the run started, jobs finished) at each counter read. */
  timeline: [number, number][];
  /** The first submit that was not answered 202, if any. */
  errorSample?: string;
}

export interface EmbedTargetInfo {
  name: EmbedTargetName;
  description: string;
  idleRss: { rssMB: number; peakRssMB: number };
  rssAfter?: { rssMB: number; peakRssMB: number };
  requestsSent: number;
  /** tollgate_embedding_batch_calls_total and tollgate_embedding_batched_requests_total after the runs. */
  batchCalls?: number;
  batchedRequests?: number;
}

/** One embeddings target's paced run (simulator requests per answered client request: 1 off). */
export interface EmbedRun extends MeasuredRun {
  target: EmbedTargetName;
}

export interface JobsChecks {
  errors: string[];
  redisKeysDeleted?: number;
  schemasDropped?: string[];
}

export interface TargetSummary {
  target: ThroughputTargetName;
  runs: number;
  drainedRuns: number;
  submitsPerS: number;
  jobsPerS: number;
  submitP50: number;
  submitP99: number;
  /** Pooled over the runs. */
  submitLatencyMs: LatencySummary;
  upstreamCallsPerJob: number;
  gatewayUsPerJob: number;
  /** Gateway CPU in cores over a run (all processes), median. */
  gatewayCores: number;
  storesUsPerJob: number | undefined;
  meanQueueWaitMs: number | undefined;
  otherCores: number;
}

export interface EmbedDerived {
  /** Client requests per upstream request, each target. */
  requestsPerCallOn: number;
  requestsPerCallOff: number;
  /** off calls/request ÷ on calls/request. */
  reduction: number;
  added: { p50: number; p90: number; p99: number; perRound: { p50: number; p99: number }; cpuUsPerReq: number };
  issues: string;
}

export interface Derived {
  throughput: TargetSummary[];
  embeddings?: EmbedDerived;
}

function summarizeTarget(target: ThroughputTargetName, runs: ThroughputRun[], pooled: LatencySummary): TargetSummary {
  const med = (f: (r: ThroughputRun) => number) => median(runs.map(f));
  const calls = runs.reduce((n, r) => n + r.upstreamCalls, 0);
  const jobs = runs.reduce((n, r) => n + r.finished, 0);
  const waits = runs.map((r) => r.meanQueueWaitMs).filter((v): v is number => v !== undefined);
  const stores = runs.map((r) => r.cpu.storesUsPerJob).filter((v): v is number => v !== undefined);
  return {
    target,
    runs: runs.length,
    drainedRuns: runs.filter((r) => r.drained).length,
    submitsPerS: med((r) => r.submitsPerS),
    jobsPerS: med((r) => (r.drained ? r.jobsPerS : Number.NaN)),
    submitP50: med((r) => r.submitLatencyMs.p50),
    submitP99: med((r) => r.submitLatencyMs.p99),
    submitLatencyMs: pooled,
    upstreamCallsPerJob: calls / Math.max(1, jobs),
    gatewayUsPerJob: med((r) => r.cpu.gatewayUsPerJob),
    gatewayCores: med((r) => r.cpu.gatewayCores.reduce((a, b) => a + b, 0)),
    storesUsPerJob: stores.length ? median(stores) : undefined,
    meanQueueWaitMs: waits.length ? median(waits) : undefined,
    otherCores: med((r) => r.cpu.otherCores),
  };
}

function find(runs: EmbedRun[], target: EmbedTargetName): EmbedRun | undefined {
  return runs.find((r) => r.target === target);
}

function deriveEmbed(runs: EmbedRun[]): EmbedDerived | undefined {
  const on = find(runs, EMBED_BATCHED);
  const off = find(runs, EMBED_BASELINE);
  if (!on || !off) return undefined;
  const d = difference({ name: EMBED_BATCHED, ...on }, { name: EMBED_BASELINE, ...off });
  return {
    requestsPerCallOn: 1 / on.upstreamCallsPerRequest,
    requestsPerCallOff: 1 / off.upstreamCallsPerRequest,
    reduction: off.upstreamCallsPerRequest / on.upstreamCallsPerRequest,
    added: { p50: d.p50, p90: d.p90, p99: d.p99, perRound: d.perRound, cpuUsPerReq: d.cpuUsPerReq },
    issues: d.issues,
  };
}

function verdicts(derived: Derived, js: JobsSettings): Verdict[] {
  const out: Verdict[] = [];
  for (const t of derived.throughput) {
    const ok = t.drainedRuns === t.runs && Math.abs(t.upstreamCallsPerJob - 1) < 1e-9;
    out.push({
      name: `${t.target}: every job submitted, run once and succeeded (${js.jobs.toLocaleString('en-US')} jobs x ${t.runs} runs)`,
      target: 'all drained, 1.00 upstream call per job',
      actual: `${t.drainedRuns}/${t.runs} runs drained; ${fmt(t.upstreamCallsPerJob, 3)} calls/job; ${fmt(t.jobsPerS, 0)} jobs/s (median)`,
      pass: ok,
      ...(ok ? {} : { note: 'a run did not drain within the timeout, had failed jobs, or made more or fewer upstream calls than jobs: see the runs table' }),
    });
  }
  const e = derived.embeddings;
  if (e) {
    const R = js.embedRate.toLocaleString('en-US');
    out.push({
      name: `embeddings micro-batching: fewer upstream requests (${R} req/s, single input)`,
      target: '> 1 client request per upstream request',
      actual: `${fmt(e.reduction)}x fewer (${fmt(e.requestsPerCallOn)} requests per upstream call on, ${fmt(e.requestsPerCallOff)} off)`,
      pass: e.reduction > 1 && !e.issues,
      ...(e.issues ? { note: e.issues } : {}),
    });
    const within = e.added.p50 <= js.embedWindowMs;
    const roundWithin = e.added.perRound.p50 <= js.embedWindowMs;
    out.push({
      name: `embeddings micro-batching: added p50 at most the batching window (${R} req/s)`,
      target: `<= ${js.embedWindowMs} ms (embeddings.batching.windowMs)`,
      actual: `${fmtDelta(e.added.p50)} ms; per-round median ${fmtDelta(e.added.perRound.p50)} ms`,
      pass: within && !e.issues,
      ...(e.issues || within !== roundWithin
        ? { note: [e.issues, within !== roundWithin ? `the per-round median ${roundWithin ? 'is' : 'is not'} within it` : ''].filter(Boolean).join('; ') }
        : {}),
    });
  }
  return out;
}

function notes(runs: ThroughputRun[], embedRuns: EmbedRun[], checks: JobsChecks, js: JobsSettings): string[] {
  const out: (string | undefined)[] = [
    otherLoadCaveat([...runs.map((r) => r.cpu.otherCores), ...embedRuns.map((r) => r.cpu.foreignCores)], 'throughput and latency suffer by that much contention.'),
  ];
  for (const r of runs) {
    if (!r.drained) out.push(`${r.target} run ${r.repeat + 1}: ${r.finished} of ${r.jobs} jobs finished within ${js.timeoutS} s.`);
    if (r.submitErrors > 0) out.push(`${r.target} run ${r.repeat + 1}: ${r.submitErrors} submits were not answered 202.`);
    if (r.drained && r.succeeded !== r.jobs) out.push(`${r.target} run ${r.repeat + 1}: ${r.jobs - r.succeeded} jobs did not succeed.`);
  }
  const keptUp = runs.filter((r) => r.drained && r.finishedAtSubmitEnd >= 0.9 * r.jobs);
  if (keptUp.length > 0) {
    out.push(
      `In ${keptUp.length} of ${runs.length} runs the workers kept up with the submits (>= 90% of the jobs had finished when the last submit was answered: column "finished at last submit"), so completed jobs/s is about the submit rate: submitting and running share the same processes and the same 2 cores (with the bench's clients, the simulator, and in distributed mode PostgreSQL and Redis). The CPU µs/job columns tell what a job costs in all (submit + claim + run + metering).`,
    );
  }
  const bound = [...new Set(runs.filter((r) => r.cpu.gatewayCores.some((c) => c >= 0.85)).map((r) => r.target))];
  for (const target of bound) {
    out.push(
      `${target}: a gateway process used >= 0.85 of a core over a run (column "gateway cores"): it was CPU-bound (Node runs the JS of one process on one core), so its throughput is that process's limit on this machine.`,
    );
  }
  out.push(...shortfallCaveats(embedRuns.map((r) => ({ label: r.target, load: r.load })), js.embedRate));
  out.push(...checks.errors);
  return out.filter((n): n is string => n !== undefined);
}

export interface ReportInput {
  runs: ThroughputRun[];
  pooledSubmit: Partial<Record<ThroughputTargetName, LatencySummary>>;
  throughputTargets: ThroughputTargetInfo[];
  embedRuns: EmbedRun[];
  embedTargets: EmbedTargetInfo[];
  checks: JobsChecks;
  jobs: JobsSettings;
  settings: BenchSettings;
  embedRounds: { count: number; sliceS: number };
  prompt: string;
  maxTokens: number;
}

export function buildReport(input: ReportInput): BuiltReport<Derived> {
  const { runs, throughputTargets, embedRuns, embedTargets, checks, jobs: js, settings: s, embedRounds } = input;
  const derived: Derived = {
    throughput: throughputTargets
      .map((t) => t.name)
      .filter((name) => runs.some((r) => r.target === name))
      .map((name) => summarizeTarget(name, runs.filter((r) => r.target === name), input.pooledSubmit[name] as LatencySummary)),
  };
  const e = deriveEmbed(embedRuns);
  if (e) derived.embeddings = e;
  const vs = verdicts(derived, js);
  const caveats = notes(runs, embedRuns, checks, js);
  const N = js.jobs.toLocaleString('en-US');
  const R = js.embedRate.toLocaleString('en-US');
  const joined = (values: number[], f: (v: number) => string) => values.map(f).join(' + ');

  const summaryTable = tableOf(derived.throughput, [
    col.target,
    column('runs drained', (t) => `${t.drainedRuns}/${t.runs}`),
    column('submits/s', (t) => fmt(t.submitsPerS, 0)),
    column('submit p50 ms', (t) => fmt(t.submitP50)),
    column('submit p99 ms', (t) => fmt(t.submitP99)),
    column('completed jobs/s', (t) => fmt(t.jobsPerS, 0)),
    column('mean queue wait ms', (t) => fmt(t.meanQueueWaitMs, 1)),
    column('upstream calls/job', (t) => fmt(t.upstreamCallsPerJob, 3)),
    column('CPU µs/job (gateways)', (t) => fmt(t.gatewayUsPerJob, 0)),
    column('gateway CPU (cores)', (t) => fmt(t.gatewayCores)),
    column('CPU µs/job (Redis+PG)', (t) => (t.storesUsPerJob === undefined ? '—' : fmt(t.storesUsPerJob, 0))),
    column('other load (cores)', (t) => fmt(t.otherCores)),
  ]);
  const runsTable = tableOf(runs, [
    col.target,
    column('run', (r) => String(r.repeat + 1)),
    column('accepted', (r) => `${r.accepted}/${r.jobs}`),
    column('submit s', (r) => fmt(r.submitS)),
    column('submits/s', (r) => fmt(r.submitsPerS, 0)),
    column('submit p50 ms', (r) => fmt(r.submitLatencyMs.p50)),
    column('p90 ms', (r) => fmt(r.submitLatencyMs.p90)),
    column('p99 ms', (r) => fmt(r.submitLatencyMs.p99)),
    column('max ms', (r) => fmt(r.submitLatencyMs.max)),
    column('finished at last submit', (r) => String(r.finishedAtSubmitEnd)),
    column('drained in s', (r) => (r.drained ? fmt(r.drainS) : `> ${js.timeoutS}`)),
    column('jobs/s', (r) => (r.drained ? fmt(r.jobsPerS, 0) : 'n/a')),
    column('succeeded', (r) => String(r.succeeded)),
    column('upstream calls', (r) => String(r.upstreamCalls)),
    column('gateway CPU ms (per process)', (r) => joined(r.cpu.perProcessMs, (v) => fmt(v, 0))),
    column('gateway cores (per process)', (r) => joined(r.cpu.gatewayCores, (v) => fmt(v))),
  ]);
  const embedTable = runTable(
    embedRuns,
    [col.target],
    [
      column('upstream calls', (r) => String(r.upstream.calls)),
      column('upstream calls/req', (r) => fmt(r.upstreamCallsPerRequest, 3)),
      column('requests per upstream call', (r) => fmt(1 / r.upstreamCallsPerRequest)),
      col.cpu('gateway'),
      col.simCpu,
    ],
  );
  const embedAddedTable = e
    ? tableOf(
        [{ reduction: e.reduction, ...e.added }],
        [column('upstream request reduction', (a) => `${fmt(a.reduction)}x`), addedColumns.p50, addedColumns.p90, addedColumns.p99, addedColumns.roundP50, addedColumns.roundP99, addedColumns.cpu],
      )
    : undefined;
  const rss = (m: { rssMB: number; peakRssMB: number }[] | undefined, f: (x: { rssMB: number; peakRssMB: number }) => number) => (m ? joined(m.map(f), (v) => fmt(v, 1)) : 'n/a');
  const targetTable = tableOf(
    [
      ...throughputTargets.map((t) => ({ name: t.name, description: t.description, idle: t.idleRss, after: t.rssAfter })),
      ...embedTargets.map((t) => ({ name: t.name, description: t.description, idle: [t.idleRss], after: t.rssAfter && [t.rssAfter] })),
    ],
    [
      column('target', (t) => t.name),
      column('what', (t) => t.description),
      column('RSS idle (MB)', (t) => rss(t.idle, (m) => m.rssMB)),
      column('RSS after (MB)', (t) => rss(t.after, (m) => m.rssMB)),
      column('peak RSS (MB)', (t) => rss(t.after, (m) => m.peakRssMB)),
    ],
  );
  const on = embedTargets.find((t) => t.name === EMBED_BATCHED);
  const off = embedTargets.find((t) => t.name === EMBED_BASELINE);
  const checkLines = [
    `Jobs: each run's jobs were counted finished (and succeeded) with \`tollgate_jobs_finished_total\` of every gateway process, and the simulator's request count over the run is the upstream calls (1.000 per job: no retries, no job run twice, no cache hit).`,
    `Embeddings: the gateway's own counters after the runs (warm-up, pre-flight and lead-ins included): batching-on \`tollgate_embedding_batched_requests_total\` ${on?.batchedRequests ?? 'n/a'} in \`tollgate_embedding_batch_calls_total\` ${on?.batchCalls ?? 'n/a'} upstream calls (${on?.batchedRequests && on.batchCalls ? fmt(on.batchedRequests / on.batchCalls) : 'n/a'} per call) for ${on?.requestsSent ?? 'n/a'} requests sent; batching-off: ${off?.batchCalls ?? 'n/a'} batch calls (expect 0) for ${off?.requestsSent ?? 'n/a'} requests.`,
    ...(checks.schemasDropped || checks.redisKeysDeleted !== undefined
      ? [`Clean-up: PostgreSQL schemas dropped: ${checks.schemasDropped?.join(', ') || 'none'}; Redis keys deleted: ${checks.redisKeysDeleted ?? 'n/a'}.`]
      : []),
  ];

  const tput = throughputTargets.map((t) => `\`${t.name}\` (${t.description})`).join('; ');
  const setup = [
    `Upstream: \`tollgate sim --latency 0 --tps 0\` (instant answers, every model, embeddings included). Every gateway is \`tollgate start\` set up as in core (one openai-compatible provider pointing at the simulator, API-key auth, \`logging.level: info\` to /dev/null, metrics on) with \`cache: {enabled: false}\`, so every job and every embedding request goes upstream.`,
    `**Job throughput** targets: ${tput}; every process \`jobs.concurrency: ${js.concurrency}\` (other \`jobs\` settings default: \`pollMs\` 500, a submit wakes the workers at once, in distributed mode the other processes too over Redis).`,
    `A run: ${N} jobs (\`POST /v1/jobs\`, \`{body: {model: sim-small, messages: [one short user message], max_tokens: ${input.maxTokens}}}\`) submitted as fast as ${js.clients} concurrent clients can (one keep-alive connection each; with two processes, the clients alternate between them), while the workers run them. Submit latency: client side, from writing the request to the last byte of its 202, µs precision. submits/s: jobs accepted ÷ (first submit sent → last submit answered). **Completed jobs/s: jobs finished ÷ (first submit sent → the first read of the counters that shows them all finished)**; the counters (\`tollgate_jobs_finished_total\` of every process, from \`/metrics\`) are read every ${js.pollMs} ms, so the end is late by up to that much. Mean queue wait: from \`tollgate_job_queue_wait_seconds\` (submit to claim). Before measuring, ${js.warmupJobs} jobs per target are submitted and drained (warm-up). ${js.repeats} runs per target, the targets taking turns (one at a time, never at once); the summary shows medians over the runs (submit latency percentiles: the median of the runs' percentiles).`,
    `CPU µs/job: CPU time (user + system, /proc) of the gateway process(es) over the run per job; Redis+PG: every \`redis-server\` and \`postgres\` process on the machine (an upper bound: they may serve others); other load: every other process, in cores (2 cores, shared: noise). The bench process itself (the submitting clients) runs on the same 2 cores.`,
    `**Embeddings micro-batching**: two embedded gateways, \`batching-on\` (\`embeddings.batching: {enabled: true, windowMs: ${js.embedWindowMs}, maxBatchSize: ${js.embedMaxBatchSize}}\`, the defaults) and \`batching-off\` (\`enabled: false\`). Request: \`POST /v1/embeddings\`, \`{model: sim-embed, input: <one short sentence>}\` (single input). Evenly paced, open loop, ${R} req/s, up to ${js.embedConnections} connections, ${js.embedLeadInS} s unmeasured lead-in; ${fmt(js.embedSeconds, 0)} s per target as ${embedRounds.count} rounds of ${fmt(embedRounds.sliceS)} s, the targets taking turns (first alternating), each slice followed by a wait for the gateway and simulator to go idle; warm-up ${s.warmupSeconds} s per target at the same rate. Upstream calls: the simulator's request count over each target's slices; reduction = upstream calls per request off ÷ on. Latency: client side, 2xx only; added = on − off over all samples, and the median over rounds of the per-round difference.`,
  ];

  const doc = methodDoc('Async jobs: throughput, submit latency; embeddings micro-batching (`npm run bench -- jobs`)', s, setup, [
    ...section(`Job throughput: ${N} jobs per run, simulator at 0 ms (medians of ${js.repeats} runs)`, summaryTable),
    heading('Every run', 4),
    runsTable,
    ...section(`Embeddings micro-batching at ${R} req/s (single-input requests)`, embedTable, ...(embedAddedTable ? [embedAddedTable] : [])),
    ...closing({ verdicts: vs, checks: [list(checkLines), targetTable], caveats }),
  ]);
  return { doc, verdicts: vs, derived, caveats };
}
