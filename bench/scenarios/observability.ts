/**
 * The cost of observability on the hot path: what metrics + request log, tracing (exporter off)
 * and tracing with OTLP export add to a request at 1,000 req/s, over the same gateway with all of
 * it off. Target (issue 7): metrics + request log add <= 0.2 ms at p50.
 *
 * One `tollgate sim` serving sim-small after a fixed 10 ms, and four gateways in front of it,
 * each a `tollgate start` with the cache off:
 *   all-off         metrics.enabled false, requestLog.enabled false, tracing.enabled false
 *   metrics+log     metrics and request log on, tracing off
 *   +tracing        as metrics+log, tracing on with exporter none (spans made, not exported)
 *   +tracing+otlp   as +tracing, exporter otlp to a tiny OTLP/HTTP sink in this process
 * measured in turns at a fixed, evenly paced rate. Checks: the trace header and /metrics of each
 * target match its settings (else the bench stops), request log rows vs requests sent (SQLite,
 * after the gateways stop) and the dropped counter, spans received by the sink, one
 * GET /admin/v1/requests. Method and caveats: observability-report.ts.
 *
 * Environment: BENCH_OBS_RATE (1000), BENCH_OBS_MODES (json; `json,stream` adds SSE),
 * BENCH_OBS_SIM_LATENCY_MS (10), BENCH_OBS_DRAIN_MS (1100: wait after each slice, so the request
 * log's 1 s timed flush is charged to the target that queued the rows).
 */
import { createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzip } from 'node:zlib';
import { promisify } from 'node:util';
import { configSchema } from '../../src/config/schema.js';
import { tracingSchema } from '../../src/config/tracing-schema.js';
import { memoryMB } from '../lib/process.js';
import { modesEnv, positiveEnv, reportFields, scenarioResult, type BenchSettings, type Scenario, type ScenarioReport } from '../lib/scenario.js';
import { countSqliteRows } from '../lib/stores.js';
import { fmt } from '../lib/table.js';
import { chatRequest, checkRequest, launchGateway, MAX_TOKENS, PROMPT, startFixedLatencySimulator, tollgateCli, type Gateway, type HttpTarget, type Mode } from '../lib/tollgate.js';
import { pacedTurns, pacedWarmUp, rounds, settleTargets } from '../lib/turns.js';
import { buildReport, JUDGED, type ObsChecks, type ObsSettings, type RunRecord, type SinkCounts, type TargetDef, type TargetInfo } from './observability-report.js';

const TARGET_DEFS: TargetDef[] = [
  { name: 'all-off', metrics: false, requestLog: false, tracing: 'off' },
  { name: 'metrics+log', metrics: true, requestLog: true, tracing: 'off' },
  { name: '+tracing', metrics: true, requestLog: true, tracing: 'none' },
  { name: '+tracing+otlp', metrics: true, requestLog: true, tracing: 'otlp' },
];
/** Observability sections besides the measured ones, turned off on every target when the config has them. */
const OTHER_SIGNALS = ['drift', 'abuse'];

function obsSettings(): ObsSettings {
  const shape = configSchema.shape as Record<string, unknown>;
  return {
    rate: positiveEnv('BENCH_OBS_RATE', 1000),
    rateConnections: 50,
    leadInS: 0.5,
    modes: modesEnv('BENCH_OBS_MODES', 'json'),
    simLatencyMs: positiveEnv('BENCH_OBS_SIM_LATENCY_MS', 10),
    drainMs: positiveEnv('BENCH_OBS_DRAIN_MS', 1_100),
    alsoOff: OTHER_SIGNALS.filter((k) => k in shape),
  };
}

/** A minimal OTLP/HTTP traces receiver: answers 200 to POST <prefix>/v1/traces and counts, per prefix, requests, bytes and spans. */
interface OtlpSink {
  origin: string;
  counts(prefix: string): SinkCounts;
  close(): Promise<void>;
}

const SPAN_ID = Buffer.from('"spanId"');
const gunzipAsync = promisify(gunzip);

function countSpans(body: Buffer): number {
  let n = 0;
  for (let i = body.indexOf(SPAN_ID); i !== -1; i = body.indexOf(SPAN_ID, i + SPAN_ID.length)) n++;
  return n;
}

async function startOtlpSink(): Promise<OtlpSink> {
  const byPrefix = new Map<string, SinkCounts>();
  const server: Server = createServer((req, res) => {
    const m = /^(\/[^/]+)\/v1\/traces$/.exec(req.url ?? '');
    if (req.method !== 'POST' || !m?.[1]) {
      res.writeHead(404).end();
      return;
    }
    const prefix = m[1];
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const raw = Buffer.concat(chunks);
        const c = byPrefix.get(prefix) ?? { requests: 0, bytes: 0, spans: 0 };
        byPrefix.set(prefix, c);
        c.requests++;
        c.bytes += raw.length;
        try {
          const body = req.headers['content-encoding'] === 'gzip' ? await gunzipAsync(raw) : raw;
          if (c.spans !== undefined && String(req.headers['content-type']).includes('json')) c.spans += countSpans(body);
          else c.spans = undefined;
        } catch {
          c.spans = undefined;
        }
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      })();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('OTLP sink: no port');
  return {
    origin: `http://127.0.0.1:${addr.port}`,
    counts: (prefix) => ({ ...(byPrefix.get(prefix) ?? { requests: 0, bytes: 0, spans: 0 }) }),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The sink path of a target: `+tracing+otlp` -> `/tracing-otlp`. */
function sinkPrefix(def: TargetDef): string {
  return `/${def.name.replace(/[^a-z]+/g, '-').replace(/^-|-$/g, '')}`;
}

interface ObsGateway extends Gateway {
  def: TargetDef;
  info: TargetInfo;
}

function targetConfig(def: TargetDef, o: ObsSettings, sink: OtlpSink): Record<string, unknown> {
  const tracing = def.tracing === 'off' ? { enabled: false } : { enabled: true, exporter: def.tracing, otlp: { url: `${sink.origin}${sinkPrefix(def)}/v1/traces` } };
  return {
    metrics: { enabled: def.metrics },
    requestLog: { enabled: def.requestLog },
    tracing,
    cache: { enabled: false },
    ...Object.fromEntries(o.alsoOff.map((k) => [k, { enabled: false }])),
  };
}

async function startGateways(s: BenchSettings, o: ObsSettings, tmp: string, sim: HttpTarget, sink: OtlpSink, started: ObsGateway[]): Promise<void> {
  for (const def of TARGET_DEFS) {
    const dir = join(tmp, sinkPrefix(def).slice(1));
    const g = await launchGateway({ name: def.name, root: s.root, dir, simOrigin: sim.origin, log: s.log, extra: targetConfig(def, o, sink), keys: def.name === JUDGED ? 'api+admin' : 'api' });
    started.push({ ...g, def, info: { name: def.name, def, idleRss: g.idleRss, traceHeader: null, metricsStatus: 0, requestsSent: 0 } });
  }
}

function request(g: ObsGateway, mode: Mode) {
  return chatRequest(g.origin, mode, g.apiKey);
}

/** One request per mode and GET /metrics: each target must run with what it claims, or the comparison is void. */
async function preflight(gateways: ObsGateway[], o: ObsSettings): Promise<void> {
  for (const g of gateways) {
    for (const mode of o.modes) {
      const headers = await checkRequest(request(g, mode), g.proc, `${g.def.name} (${mode})`);
      g.info.requestsSent++;
      g.info.traceHeader = headers.get('x-tollgate-trace-id');
      if ((g.def.tracing !== 'off') !== (g.info.traceHeader !== null)) {
        throw new Error(`${g.def.name} (${mode}): tracing is ${g.def.tracing === 'off' ? 'off' : 'on'} in its config but the answer ${g.info.traceHeader ? 'carries' : 'lacks'} x-tollgate-trace-id`);
      }
    }
    const res = await fetch(`${g.origin}/metrics`, { signal: AbortSignal.timeout(10_000) });
    await res.arrayBuffer();
    g.info.metricsStatus = res.status;
    if (g.def.metrics !== (res.status === 200)) throw new Error(`${g.def.name}: GET /metrics answered ${res.status} with metrics ${g.def.metrics ? 'on' : 'off'} in its config`);
  }
}

/** Sum of tollgate_request_log_dropped_total over its labels (0 before any drop; undefined when /metrics lacks the metric). */
async function requestLogDropped(g: ObsGateway): Promise<number | undefined> {
  const res = await fetch(`${g.origin}/metrics`, { signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  if (!res.ok || !text.includes('# TYPE tollgate_request_log_dropped_total ')) return undefined;
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^tollgate_request_log_dropped_total(?:\{[^}]*\})?\s+(\S+)/.exec(line);
    if (m?.[1]) sum += Number(m[1]);
  }
  return sum;
}

/** After the runs, before stopping: the dropped counter of each logging target, and GET /admin/v1/requests on metrics+log. */
async function inspectLive(gateways: ObsGateway[], checks: ObsChecks, log: (l: string) => void): Promise<void> {
  for (const g of gateways) {
    try {
      if (g.def.metrics && g.def.requestLog) {
        const dropped = await requestLogDropped(g);
        if (dropped !== undefined) g.info.requestLogDropped = dropped;
        else checks.errors.push(`${g.def.name}: /metrics has no tollgate_request_log_dropped_total`);
      }
      if (g.adminKey) {
        const res = await fetch(`${g.origin}/admin/v1/requests?limit=5`, { headers: { authorization: `Bearer ${g.adminKey}` }, signal: AbortSignal.timeout(10_000) });
        const body = (await res.json().catch(() => undefined)) as { data?: unknown[] } | undefined;
        checks.adminRequests = { status: res.status, rows: Array.isArray(body?.data) ? body.data.length : undefined };
        log(`${g.def.name}: GET /admin/v1/requests?limit=5: HTTP ${res.status}, ${checks.adminRequests.rows ?? 'n/a'} rows`);
      }
    } catch (err) {
      checks.errors.push(`inspecting ${g.def.name} failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export const observabilityScenario: Scenario = {
  name: 'observability',
  description: 'Observability: what metrics + request log and tracing (exporter off / OTLP) add to a request over all off, at 1,000 req/s',
  async run(s: BenchSettings): Promise<ScenarioReport> {
    const o = obsSettings();
    if (!('exporter' in tracingSchema.shape)) throw new Error('the config has no tracing.exporter (src/config/tracing-schema.ts): the +tracing target needs `exporter: none`');
    const tmp = mkdtempSync(join(tmpdir(), 'tollgate-bench-observability-'));
    const rate = rounds(s.seconds, 1);
    const runs: RunRecord[] = [];
    const gateways: ObsGateway[] = [];
    const checks: ObsChecks = { errors: [] };
    let sim: HttpTarget | undefined;
    let sink: OtlpSink | undefined;
    try {
      sink = await startOtlpSink();
      s.log(`OTLP sink on ${sink.origin}; starting simulator (sim-small: ${o.simLatencyMs} ms, fixed)`);
      sim = await startFixedLatencySimulator({ cli: tollgateCli(s.root), dir: tmp, latencyMs: o.simLatencyMs, models: ['sim-small'] });
      const simTarget = sim;
      await startGateways(s, o, tmp, simTarget, sink, gateways);
      await preflight(gateways, o);

      for (const g of gateways) {
        g.info.requestsSent += await pacedWarmUp({ name: g.def.name, requests: o.modes.map((mode) => request(g, mode)), rate: o.rate, connections: o.rateConnections, seconds: s.warmupSeconds, log: s.log });
      }
      await sleep(o.drainMs);
      await settleTargets([simTarget.proc.pid, ...gateways.map((g) => g.proc.pid)], s.log);

      for (const mode of o.modes) {
        s.log(`${mode}: fixed rate ${o.rate} req/s, ${rate.count} rounds of ${fmt(rate.sliceS)} s per target (+ ${o.drainMs} ms drain each)`);
        const results = await pacedTurns(
          gateways.map((g) => ({ name: g.def.name, pid: g.proc.pid, request: request(g, mode) })),
          { label: mode, log: s.log, sim: { origin: simTarget.origin, pid: simTarget.proc.pid }, rate: o.rate, connections: o.rateConnections, rounds: rate, leadInS: o.leadInS, afterLoad: () => sleep(o.drainMs) },
        );
        gateways.forEach((g, i) => (g.info.requestsSent += results[i]!.load.sent));
        runs.push(...results.map((r, i): RunRecord => ({ mode, target: gateways[i]!.def.name, ...r })));
      }
      for (const g of gateways) g.info.rssAfter = memoryMB(g.proc.pid);
      await inspectLive(gateways, checks, s.log);
    } finally {
      // Stopping flushes the request log's last rows and the last spans (to the sink, still up).
      for (const g of [...gateways].reverse()) await g.proc.stop(10_000);
      await sim?.proc.stop();
      for (const g of gateways) {
        try {
          const rows = await countSqliteRows(join(g.dir, 'state', 'tollgate.db'), 'request_log');
          if (rows !== undefined) g.info.requestLogRows = rows;
        } catch (err) {
          checks.errors.push(`counting ${g.def.name}'s request log rows failed: ${err instanceof Error ? err.message : String(err)}`);
        }
        if (g.def.tracing !== 'off' && sink) g.info.sink = sink.counts(sinkPrefix(g.def));
      }
      await sink?.close();
      rmSync(tmp, { recursive: true, force: true });
    }
    for (const g of gateways) {
      s.log(
        `${g.def.name}: ${g.info.requestsSent} requests sent, ${g.info.requestLogRows ?? 'n/a'} request log rows (${g.info.requestLogDropped ?? 0} dropped)` +
          (g.info.sink ? `; OTLP sink: ${g.info.sink.requests} requests, ${g.info.sink.spans ?? 'n/a'} spans` : ''),
      );
    }

    const targets = gateways.map((g) => g.info);
    const report = buildReport({ runs, targets, checks, obs: o, settings: s, rate, maxTokens: MAX_TOKENS });
    return scenarioResult('observability', s, report, {
      settings: { ...o, seconds: s.seconds, warmupSeconds: s.warmupSeconds, rounds: rate, maxTokens: MAX_TOKENS, prompt: PROMPT, targets: TARGET_DEFS },
      targets,
      runs,
      ...reportFields(report, { checks }),
    });
  },
};
