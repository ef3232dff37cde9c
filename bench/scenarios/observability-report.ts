/**
 * The observability scenario's report: what metrics + request log, tracing (exporter off) and
 * tracing with OTLP export add to a request over a gateway with all of it off (percentile
 * differences, per-round medians and the IQR noise bar), CPU per request, the verdict for the
 * issue's target (metrics + request log <= 0.2 ms at p50), checks that each target ran with
 * what it claims (trace header, /metrics, request log rows, spans received by the OTLP sink),
 * caveats, and the tables for the console and bench/RESULTS.md.
 */
import { issuesOf, median, pairedDiffs, pairedMedian, quantile } from '../lib/compare.js';
import { problems, rateShortfall, type LoadResult } from '../lib/load.js';
import { describeMachine, type MachineInfo } from '../lib/results.js';
import type { BenchSettings, Verdict } from '../lib/scenario.js';
import { fmt, fmtDelta, markdownTable, textTable } from '../lib/table.js';
import type { Mode } from '../lib/tollgate.js';
import type { TurnCpu } from '../lib/turns.js';

export type TargetName = 'all-off' | 'metrics+log' | '+tracing' | '+tracing+otlp';
export const BASELINE: TargetName = 'all-off';
/** The issue's target is judged on this one. */
export const JUDGED: TargetName = 'metrics+log';
/** The issue's target: metrics + request log add at most this at p50 (ms). */
export const TARGET_ADDED_P50_MS = 0.2;
/**
 * Whether `metrics.enabled: false` also stops recording the metrics (today it only removes the
 * /metrics endpoint: settle still calls GatewayMetrics.observeRequest). Set to true once it does:
 * the setup text and caveats follow.
 */
export const METRICS_OFF_STOPS_RECORDING = true;
/** Spans of one JSON request as src/observability/tracing.ts describes it: root, 8 stages, 1 upstream attempt. */
export const EXPECTED_SPANS_PER_REQUEST = 10;

/** What one target turns on. */
export interface TargetDef {
  name: TargetName;
  metrics: boolean;
  requestLog: boolean;
  /** off: tracing.enabled false; none: spans made, not exported; otlp: exported to the bench's sink. */
  tracing: 'off' | 'none' | 'otlp';
}

export interface ObsSettings {
  rate: number;
  rateConnections: number;
  leadInS: number;
  modes: Mode[];
  /** The simulator's fixed time to the answer (ms). */
  simLatencyMs: number;
  /** Wait after each slice, inside it, so batched background work (request log flush, span export) is charged to the target that caused it (ms). */
  drainMs: number;
  /** Optional sections turned off on every target because they exist in the config (e.g. drift, abuse). */
  alsoOff: string[];
}

/** What the bench's OTLP/HTTP sink received on one path (one target). */
export interface SinkCounts {
  requests: number;
  bytes: number;
  /** `"spanId"` keys in the JSON bodies; undefined when a body was not JSON (e.g. protobuf). */
  spans: number | undefined;
}

export interface TargetInfo {
  name: TargetName;
  def: TargetDef;
  idleRss: { rssMB: number; peakRssMB: number };
  rssAfter?: { rssMB: number; peakRssMB: number };
  /** Pre-flight: x-tollgate-trace-id of the answer (tracing on: present). */
  traceHeader: string | null;
  /** Pre-flight: HTTP status of GET /metrics. */
  metricsStatus: number;
  /** Requests written to the gateway in all (pre-flight, warm-up, lead-ins, measured). */
  requestsSent: number;
  /** Rows in its request_log table after it stopped (undefined: could not read). */
  requestLogRows?: number;
  /** tollgate_request_log_dropped_total at the end (metrics on only). */
  requestLogDropped?: number;
  /** What the OTLP sink received at this target's path (tracing targets). */
  sink?: SinkCounts;
}

export interface RunRecord {
  mode: Mode;
  target: TargetName;
  load: LoadResult;
  cpu: TurnCpu;
  /** Simulator requests per answered request (expect 1). */
  upstreamCallsPerRequest: number;
  upstream: { calls: number; sent: number; answered: number };
}

export interface ObsChecks {
  /** GET /admin/v1/requests?limit=5 on metrics+log after the runs. */
  adminRequests?: { status: number; rows: number | undefined };
  errors: string[];
}

export interface Added {
  target: TargetName;
  p50: number;
  p99: number;
  perRound: { p50: number; p99: number };
  /** target - all-off of each round's p50, in round order. */
  roundDiffsP50: number[];
  /** Interquartile range of `roundDiffsP50`: the round-to-round noise. */
  iqrP50: number;
  roundsSlower: number;
  cpuUsPerReq: number;
  issues: string;
}

export type Derived = Partial<Record<Mode, Added[]>>;

function find(runs: RunRecord[], mode: Mode, target: TargetName): RunRecord | undefined {
  return runs.find((r) => r.mode === mode && r.target === target);
}

function derive(runs: RunRecord[], modes: Mode[], targets: TargetInfo[]): Derived {
  const out: Derived = {};
  for (const mode of modes) {
    const b = find(runs, mode, BASELINE);
    if (!b) continue;
    out[mode] = targets.flatMap((t): Added[] => {
      const a = find(runs, mode, t.name);
      if (!a || t.name === BASELINE) return [];
      const diffs = pairedDiffs(a.load, b.load, 'p50');
      return [
        {
          target: t.name,
          p50: a.load.latencyMs.p50 - b.load.latencyMs.p50,
          p99: a.load.latencyMs.p99 - b.load.latencyMs.p99,
          perRound: { p50: pairedMedian(a.load, b.load, 'p50'), p99: pairedMedian(a.load, b.load, 'p99') },
          roundDiffsP50: diffs,
          iqrP50: quantile(diffs, 0.75) - quantile(diffs, 0.25),
          roundsSlower: diffs.filter((d) => d > 0).length,
          cpuUsPerReq: a.cpu.targetUsPerReq - b.cpu.targetUsPerReq,
          issues: issuesOf({ [t.name]: a.load, [BASELINE]: b.load }),
        },
      ];
    });
  }
  return out;
}

/** Problems that void the comparison: a target that did not run with what it claims. */
function setupProblems(targets: TargetInfo[]): string[] {
  const out: string[] = [];
  for (const t of targets) {
    const logged = t.requestLogRows ?? 0;
    if (t.def.requestLog && t.requestLogRows === undefined) out.push(`${t.name}: its request_log table could not be read`);
    else if (t.def.requestLog && logged + (t.requestLogDropped ?? 0) < t.requestsSent * 0.99) out.push(`${t.name}: ${logged} request log rows (+${t.requestLogDropped ?? 0} dropped) for ${t.requestsSent} requests sent`);
    if (!t.def.requestLog && logged > 0) out.push(`${t.name}: wrote ${logged} request log rows with the request log off`);
    if (t.def.metrics !== (t.metricsStatus === 200)) out.push(`${t.name}: GET /metrics answered ${t.metricsStatus} with metrics ${t.def.metrics ? 'on' : 'off'}`);
  }
  return out;
}

function verdicts(derived: Derived, targets: TargetInfo[], modes: Mode[], rate: number): Verdict[] {
  const R = rate.toLocaleString('en-US');
  const broken = setupProblems(targets.filter((t) => t.name === JUDGED || t.name === BASELINE));
  return modes.map((mode): Verdict => {
    const name = `${mode}: metrics + request log over all off, at ${R} req/s`;
    const target = `added p50 <= ${TARGET_ADDED_P50_MS} ms`;
    const a = derived[mode]?.find((x) => x.target === JUDGED);
    if (!a) return { name, target, actual: 'n/a', pass: false, note: 'no run' };
    const notes: string[] = [...broken];
    if (a.issues) notes.push(a.issues);
    const pass = Number.isFinite(a.p50) && a.p50 <= TARGET_ADDED_P50_MS;
    const roundPass = Number.isFinite(a.perRound.p50) && a.perRound.p50 <= TARGET_ADDED_P50_MS;
    if (pass !== roundPass) notes.push(`the per-round median (${fmtDelta(a.perRound.p50)} ms) ${roundPass ? 'meets' : 'misses'} it: within noise`);
    else if (Math.abs(a.p50 - TARGET_ADDED_P50_MS) < a.iqrP50) notes.push(`within the round-to-round noise (IQR ${fmt(a.iqrP50)} ms) of the target`);
    return {
      name,
      target,
      actual: `${fmtDelta(a.p50)} ms (per-round median ${fmtDelta(a.perRound.p50)} ms, IQR ${fmt(a.iqrP50)} ms)`,
      pass: pass && broken.length === 0 && !a.issues,
      ...(notes.length ? { note: notes.join('; ') } : {}),
    };
  });
}

function caveatsOf(runs: RunRecord[], targets: TargetInfo[], checks: ObsChecks, o: ObsSettings): string[] {
  const out: string[] = [];
  const noisiest = runs.reduce((x, r) => Math.max(x, r.cpu.foreignCores), 0);
  if (noisiest > 0.25) {
    out.push(`Other processes used up to ${fmt(noisiest)} of the 2 cores during the runs (column "other load"): latencies, p99 above all, are inflated by that contention; the per-round medians and CPU µs/req resist it best.`);
  }
  for (const r of runs.filter((x) => rateShortfall(x.load))) out.push(`${r.target} (${r.mode}) could not sustain ${o.rate} req/s here (${fmt(r.load.rps, 0)} req/s): its latency at that rate is time spent queueing.`);
  for (const r of runs.filter((x) => x.upstreamCallsPerRequest > 1.05)) out.push(`${r.target} (${r.mode}) made ${fmt(r.upstreamCallsPerRequest)} simulator calls per request (expected 1: retries?).`);
  if (!METRICS_OFF_STOPS_RECORDING) {
    out.push('`metrics.enabled: false` only removes the /metrics endpoint: all-off still records every metric in memory (settle calls GatewayMetrics.observeRequest whatever the setting), so "added" by metrics+log is the request log, the /metrics endpoint being there, and nothing of the recording itself; the recording\'s cost is in every target.');
  }
  out.push('The live statistics of the dashboard (a settle observer) have no switch: they run on every target, all-off included.');
  for (const p of setupProblems(targets)) out.push(`Setup: ${p}.`);
  const otlp = targets.find((t) => t.def.tracing === 'otlp');
  if (otlp?.sink) {
    if (!otlp.sink.requests) out.push(`${otlp.name}: the OTLP sink received nothing: spans were not exported, so its row measures tracing without export.`);
    else if (otlp.sink.spans !== undefined && otlp.sink.spans < otlp.requestsSent * EXPECTED_SPANS_PER_REQUEST * 0.95) {
      out.push(`${otlp.name}: ${otlp.sink.spans} spans received for ${otlp.requestsSent} requests (${fmt(otlp.sink.spans / Math.max(1, otlp.requestsSent), 1)} per request, ~${EXPECTED_SPANS_PER_REQUEST} expected): the batch processor dropped some (queue full), or a request has fewer spans than expected.`);
    }
  }
  for (const t of targets.filter((x) => x.def.tracing === 'none' && x.sink?.requests)) out.push(`${t.name}: the sink received ${t.sink?.requests} export requests although its exporter is off.`);
  out.push(`Batched background work is charged to a target only if it runs within its slice, the ${o.drainMs} ms drain after it or the idle wait: the request log's timed flush (every 1 s) falls within the drain; of OTLP export, spans still queued below one batch (512) wait for the 5 s timer and are mostly exported during other targets' turns.`);
  out.push('The OTLP sink runs in the bench process (it counts requests, bytes and spans; it does not decode them): its CPU is in "CPU µs/req (bench)", and its work shares the load generator\'s event loop during +tracing+otlp\'s turns.');
  for (const e of checks.errors) out.push(e);
  return out;
}

export interface ReportInput {
  runs: RunRecord[];
  targets: TargetInfo[];
  checks: ObsChecks;
  obs: ObsSettings;
  settings: BenchSettings;
  rate: { count: number; sliceS: number };
  date: Date;
  machine: MachineInfo;
  maxTokens: number;
}

export interface ObsBenchReport {
  summary: string;
  markdown: string;
  verdicts: Verdict[];
  derived: Derived;
  caveats: string[];
}

function tracingLabel(def: TargetDef): string {
  return def.tracing === 'off' ? 'off' : def.tracing === 'none' ? 'on, exporter none' : 'on, OTLP to the sink';
}

export function buildReport(input: ReportInput): ObsBenchReport {
  const { runs, targets, checks, obs: o, settings: s, rate, date, machine } = input;
  const derived = derive(runs, o.modes, targets);
  const vs = verdicts(derived, targets, o.modes, o.rate);
  const caveats = caveatsOf(runs, targets, checks, o);
  const R = o.rate.toLocaleString('en-US');
  const ms = (v: number) => `${fmtDelta(v)} ms`;

  const rateTable = {
    header: ['mode', 'target', 'req/s', 'p50 ms', 'p90 ms', 'p99 ms', 'p99.9 ms', 'max ms', 'CPU µs/req (gateway)', 'CPU µs/req (sim)', 'CPU µs/req (bench)', 'sim calls/req', 'other load (cores)', 'errors'],
    rows: runs.map((r) => [
      r.mode,
      r.target,
      fmt(r.load.rps, 0),
      fmt(r.load.latencyMs.p50),
      fmt(r.load.latencyMs.p90),
      fmt(r.load.latencyMs.p99),
      fmt(r.load.latencyMs.p999),
      fmt(r.load.latencyMs.max),
      fmt(r.cpu.targetUsPerReq, 0),
      fmt(r.cpu.simUsPerReq, 0),
      fmt(r.cpu.loadGenUsPerReq, 0),
      fmt(r.upstreamCallsPerRequest),
      fmt(r.cpu.foreignCores),
      problems(r.load) || 'ok',
    ]),
  };
  const addedTable = {
    header: ['mode', 'target', 'added p50', 'added p99', 'per-round median: added p50', 'added p99', 'IQR of per-round added p50', 'rounds slower', 'added CPU µs/req (gateway)'],
    rows: o.modes.flatMap((mode) =>
      (derived[mode] ?? []).map((a) => [mode, a.target, ms(a.p50), ms(a.p99), ms(a.perRound.p50), ms(a.perRound.p99), `${fmt(a.iqrP50)} ms`, `${a.roundsSlower}/${a.roundDiffsP50.length}`, fmtDelta(a.cpuUsPerReq, 0)]),
    ),
  };
  const roundsLines = o.modes.flatMap((mode) =>
    (derived[mode] ?? []).map((a) => `- ${mode}, ${a.target}, added p50 per round (ms, in round order): ${a.roundDiffsP50.map((d) => fmtDelta(d)).join(', ')} (median ${fmtDelta(median(a.roundDiffsP50))})`),
  );
  const verdictTable = {
    header: ['target', 'goal', 'measured', 'verdict'],
    rows: vs.map((v) => [v.name, v.target, v.actual, `${v.pass ? 'PASS' : 'MISS'}${v.note ? ` (${v.note})` : ''}`]),
  };
  const targetTable = {
    header: ['target', 'metrics', 'request log', 'tracing', 'GET /metrics', 'x-tollgate-trace-id', 'requests sent', 'request log rows', 'rows dropped', 'OTLP requests', 'OTLP KB', 'spans', 'spans/req', 'RSS idle (MB)', 'RSS after (MB)', 'peak RSS (MB)'],
    rows: targets.map((t) => [
      t.name,
      t.def.metrics ? 'on' : 'off',
      t.def.requestLog ? 'on' : 'off',
      tracingLabel(t.def),
      String(t.metricsStatus),
      t.traceHeader ? 'yes' : 'no',
      String(t.requestsSent),
      t.requestLogRows === undefined ? 'n/a' : String(t.requestLogRows),
      t.requestLogDropped === undefined ? '—' : String(t.requestLogDropped),
      t.sink ? String(t.sink.requests) : '—',
      t.sink ? fmt(t.sink.bytes / 1024, 0) : '—',
      t.sink?.spans === undefined ? '—' : String(t.sink.spans),
      t.sink?.spans === undefined ? '—' : fmt(t.sink.spans / Math.max(1, t.requestsSent), 1),
      fmt(t.idleRss.rssMB, 1),
      fmt(t.rssAfter?.rssMB, 1),
      fmt(t.rssAfter?.peakRssMB, 1),
    ]),
  };
  const ar = checks.adminRequests;
  const checkLines = [
    '- Each target ran with what it claims (table below): the pre-flight answer carries `x-tollgate-trace-id` exactly when tracing is on; GET /metrics answers 200 exactly when metrics are on; after the gateways stopped (their last request-log batch is written on close), the rows of each `request_log` table are counted (read-only) against the requests sent to it, with `tollgate_request_log_dropped_total` read from /metrics before stopping; the OTLP sink counts what each tracing target exported to its own path (the +tracing target points at the sink too, with its exporter off: it must send nothing).',
    `- GET /admin/v1/requests?limit=5 on ${JUDGED} after the runs: ${ar ? `HTTP ${ar.status}, ${ar.rows ?? 'n/a'} rows` : 'n/a'}.`,
  ];

  const metricsOff = METRICS_OFF_STOPS_RECORDING ? 'metrics off (`metrics.enabled: false`: no recording, no endpoint)' : 'metrics off (`metrics.enabled: false`: no /metrics endpoint; recording itself has no switch, see caveats)';
  const setup = [
    `- Upstream: one \`tollgate sim\` serving \`sim-small\`, answering after a fixed ${o.simLatencyMs} ms (\`ttftMs: {median: ${o.simLatencyMs}, p95: ${o.simLatencyMs}}\`) with every token at once.`,
    `- Targets, each its own \`tollgate start\` in front of it, set up as in core (one openai-compatible provider, API-key auth, \`logging.level: info\` to /dev/null, embedded storage in its own folder), \`cache: {enabled: false}\`${o.alsoOff.length ? `, ${o.alsoOff.map((k) => `\`${k}: {enabled: false}\``).join(', ')}` : ''}: \`all-off\`: ${metricsOff}, \`requestLog.enabled: false\`, \`tracing.enabled: false\`; \`metrics+log\`: metrics and the request log on (defaults: batches of 500 rows, flushed every 1 s), tracing off; \`+tracing\`: as metrics+log with \`tracing: {enabled: true, exporter: none}\` (every span made, sampleRatio 1, none exported); \`+tracing+otlp\`: as +tracing with \`exporter: otlp\` to a tiny OTLP/HTTP sink in the bench process on 127.0.0.1 (answers 200, counts requests, bytes and spans), batch processor at its defaults.`,
    `- Request: \`POST /v1/chat/completions\`, \`model: sim-small\`, one short user message, \`max_tokens: ${input.maxTokens}\`${o.modes.includes('stream') ? '; `stream: true` for the stream rows' : ''}. Same bytes to every target (each with its own API key).`,
    `- Fixed rate: evenly paced, open loop, ${R} req/s, up to ${o.rateConnections} connections, ${o.leadInS} s unmeasured lead-in; ${s.seconds} s per target and mode, as ${rate.count} rounds of ${fmt(rate.sliceS)} s. In each round the targets take turns, never at once, the first rotating. After each slice the bench waits ${o.drainMs} ms (request log flush) and then for the gateway and simulator to go idle, charging that to the slice. Warm-up: ${s.warmupSeconds} s per target at the same paced rate.`,
    `- Latency: client side, from writing the request to the last byte of the answer, µs precision, 2xx only. Added: a target's percentile minus all-off's over all samples; per-round median: the median over rounds of the same difference slice by slice (lib/compare.ts); IQR: the interquartile range of the per-round p50 differences, the run's own noise. The verdict uses the added p50 over all samples (as core and metering) and says when the per-round median disagrees.`,
    '- CPU µs/req: CPU time (user + system, /proc, all threads: the SQLite writer thread included) of the gateway per request sent; sim: the simulator\'s; bench: the load generator\'s and the OTLP sink\'s. Other load: CPU of everything else, in cores (2 cores, shared: noise).',
  ].join('\n');

  const markdown = [
    '## Observability: the cost of metrics, request log and tracing (`npm run bench -- observability`)',
    '',
    `Date: ${date.toISOString()}  `,
    `Machine: ${describeMachine(machine)}`,
    '',
    setup,
    '',
    `### Fixed rate: ${R} req/s`,
    '',
    markdownTable(rateTable.header, rateTable.rows),
    '',
    `### Added over all-off at ${R} req/s`,
    '',
    markdownTable(addedTable.header, addedTable.rows),
    '',
    ...roundsLines,
    '',
    '### Targets',
    '',
    markdownTable(verdictTable.header, verdictTable.rows),
    '',
    '### Checks',
    '',
    ...checkLines,
    '',
    markdownTable(targetTable.header, targetTable.rows),
    ...(caveats.length ? ['', '### Caveats', '', ...caveats.map((n) => `- ${n}`)] : []),
  ].join('\n');

  const summary = [
    `Machine: ${describeMachine(machine)}`,
    '',
    `Fixed rate (paced, ${o.rate} req/s, ${s.seconds} s per target and mode):`,
    textTable(rateTable.header, rateTable.rows),
    '',
    'Added over all-off:',
    textTable(addedTable.header, addedTable.rows),
    ...roundsLines,
    '',
    'Targets:',
    textTable(verdictTable.header, verdictTable.rows),
    '',
    'Checks:',
    ...checkLines,
    textTable(targetTable.header, targetTable.rows),
    ...(caveats.length ? ['', 'Caveats:', ...caveats.map((n) => `- ${n}`)] : []),
  ].join('\n');

  return { summary, markdown, verdicts: vs, derived, caveats };
}
