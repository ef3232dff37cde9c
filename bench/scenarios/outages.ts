/**
 * Outages (issue 15): what a user and an operator see while PostgreSQL or Redis fails, and how
 * long the gateway takes to recover after the heal.
 *
 * One `tollgate start` (distributed mode, defaults otherwise, log to a file) in front of
 * `tollgate sim --latency 0 --tps 0`, reaching PostgreSQL and Redis through a loopback TCP proxy
 * each (test/helpers/tcp-proxy.ts): the shared servers are never stopped or paused, only the
 * proxies. A fresh PostgreSQL schema and Redis key prefix per run, removed at the end.
 *
 * Faults, one after another on the same gateway, each healed before the next: pg-refuse, pg-pause,
 * pg-drop (the proxy's modes), pg-lock (a transaction on a direct connection holding ACCESS
 * EXCLUSIVE on api_keys), redis-refuse, redis-pause. Each: a lead of healthy traffic, the fault for
 * BENCH_OUTAGE_SECONDS, the heal, BENCH_OUTAGE_WATCH_SECONDS of recovery watch.
 *
 * Load, paced and open loop, for the whole run: BENCH_OUTAGE_RATE req/s (50) of a known key (tier
 * with rate limits and budgets), 5 req/s of a known key of a tier with rate limits only (the tiers
 * put Redis on the request path: with the default tiers it is not), and from each fault's start
 * 2 req/s of a key created before the gateway started and never used on it before (a new one per
 * fault). Client timeout 30 s. /readyz is polled every 250 ms, /metrics every 500 ms.
 *
 * Report per fault: statuses and latency of the requests started during the fault, /readyz and
 * /metrics meanwhile, recovery after the heal (every known-key answer 200 again; the ledger spool
 * back to its level before the fault), and, after the run, the ledger: every request answered 200
 * must have its usage_events row.
 *
 * Environment: BENCH_OUTAGE_SECONDS (10), BENCH_OUTAGE_WATCH_SECONDS (15), BENCH_OUTAGE_LEAD_SECONDS
 * (3), BENCH_OUTAGE_RATE (50), BENCH_OUTAGE_FAULTS (all: pg-refuse,pg-pause,pg-drop,pg-lock,
 * redis-refuse,redis-pause), BENCH_REDIS_URL, BENCH_POSTGRES_URL.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { performance } from 'node:perf_hooks';
import postgres from 'postgres';
import { Pool } from 'undici';
import { configSchema } from '../../src/config/schema.js';
import { startTcpProxy, type TcpProxy } from '../../test/helpers/tcp-proxy.js';
import { freePort, runCommand } from '../lib/process.js';
import { fileStamp, RESULTS_DIR } from '../lib/results.js';
import { positiveEnv, scenarioResult, type BenchSettings, type Scenario, type ScenarioReport } from '../lib/scenario.js';
import { DEFAULT_POSTGRES_URL, DEFAULT_REDIS_URL, deleteRedisKeys, dropSchema, redact, reserveStores, uniqueStoreNames } from '../lib/stores.js';
import { chatRequest, checkRequest, childEnv, gatewayConfig, startGateway, startSimulator, tollgateCli, writeGatewayConfig, type HttpTarget } from '../lib/tollgate.js';
import {
  analyzeFault,
  buildReport,
  checkLedger,
  FAULTS,
  ledgerByPhase,
  type FaultName,
  type LedgerCheck,
  type LogSummary,
  type OutageSettings,
  type PhaseTimes,
  type Poll,
  type RequestRecord,
  type StreamName,
} from './outages-report.js';
import { VERY_HIGH_BUDGET, VERY_HIGH_LIMIT } from './metering-report.js';

const TIERS = {
  standard: { limits: { tenant: { ...VERY_HIGH_LIMIT }, key: { ...VERY_HIGH_LIMIT } }, budgets: { tenant: { ...VERY_HIGH_BUDGET }, key: { ...VERY_HIGH_BUDGET } } },
  premium: { limits: { tenant: { ...VERY_HIGH_LIMIT }, key: { ...VERY_HIGH_LIMIT } } },
};
const REQUEST_ID_PREFIX = 'outage';

function outageSettings(date: Date): OutageSettings {
  const env = process.env;
  const all = FAULTS.map((f) => f.name);
  const faults = (env.BENCH_OUTAGE_FAULTS ?? all.join(','))
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
  for (const f of faults) if (!all.includes(f as FaultName)) throw new Error(`BENCH_OUTAGE_FAULTS: unknown fault '${f}' (${all.join(', ')})`);
  if (faults.length === 0) throw new Error('BENCH_OUTAGE_FAULTS names no fault');
  return {
    faultS: positiveEnv('BENCH_OUTAGE_SECONDS', 10),
    watchS: positiveEnv('BENCH_OUTAGE_WATCH_SECONDS', 15),
    leadS: positiveEnv('BENCH_OUTAGE_LEAD_SECONDS', 3),
    knownRate: positiveEnv('BENCH_OUTAGE_RATE', 50),
    limitsOnlyRate: 5,
    unknownRate: 2,
    clientTimeoutMs: 30_000,
    readyzEveryMs: 250,
    metricsEveryMs: 500,
    faults: faults as FaultName[],
    redisUrl: env.BENCH_REDIS_URL || DEFAULT_REDIS_URL,
    postgresUrl: env.BENCH_POSTGRES_URL || DEFAULT_POSTGRES_URL,
    ...uniqueStoreNames('outages', date),
    tiers: TIERS,
    defaults: gatewayDefaults(),
  };
}

/** The defaults the gateway runs with (the bench sets none of these): for the report. */
function gatewayDefaults(): OutageSettings['defaults'] {
  const storage = configSchema.shape.storage.parse({ kind: 'distributed', redisUrl: 'redis://x:6379', postgresUrl: 'postgres://x@y:5432/z' });
  const auth = configSchema.shape.auth.parse({});
  if (storage.kind !== 'distributed') throw new Error('unreachable');
  return {
    postgresQueryTimeoutMs: storage.postgresQueryTimeoutMs,
    postgresStatementTimeoutMs: storage.postgresStatementTimeoutMs,
    postgresConnectTimeoutMs: storage.postgresConnectTimeoutMs,
    redisCommandTimeoutMs: storage.redisCommandTimeoutMs,
    authCacheTtlMs: auth.cacheTtlMs,
    authMaxStaleMs: auth.maxStaleMs,
  };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** `url` with its host and port replaced by the proxy's. */
function viaProxy(url: string, proxy: TcpProxy): string {
  const u = new URL(url);
  u.hostname = '127.0.0.1';
  u.port = String(proxy.port);
  return u.toString();
}

function targetPort(url: string, dflt: number): { host: string; port: number } {
  const u = new URL(url);
  return { host: u.hostname || '127.0.0.1', port: Number(u.port || dflt) };
}

/** `tollgate keys create --json` (in `tenant`); returns the key. */
async function createKey(cli: string, configFile: string, cwd: string, tenant: string, name: string): Promise<string> {
  const out = await runCommand('tollgate keys create', process.execPath, [cli, 'keys', 'create', '--tenant', tenant, '--name', name, '--json', '--config', configFile], { cwd, timeoutMs: 60_000 });
  const key = (JSON.parse(out) as { key?: unknown }).key;
  if (typeof key !== 'string' || key === '') throw new Error(`tollgate keys create --json printed no key:\n${out}`);
  return key;
}

/**
 * Open-loop paced traffic: each stream sends request i at its start + i / rate, whatever the
 * earlier ones are doing (the pool has no connection limit, so nothing waits on the client side),
 * and every request is recorded: start, end, status, error code.
 */
class Traffic {
  readonly records: RequestRecord[] = [];
  private readonly pool: Pool;
  private readonly streams = new Map<StreamName, { key: string; rate: number; begin: number; sent: number }>();
  private timer: NodeJS.Timeout | undefined;
  private inflight = 0;
  private seq = 0;
  phase = 0;

  constructor(
    private readonly origin: string,
    private readonly t0: number,
    private readonly timeoutMs: number,
  ) {
    this.pool = new Pool(origin, { headersTimeout: timeoutMs, bodyTimeout: timeoutMs, keepAliveTimeout: 30_000 });
  }

  private now(): number {
    return performance.now() - this.t0;
  }

  start(): void {
    const tick = () => {
      const now = this.now();
      for (const [name, s] of this.streams) {
        while (s.begin + (s.sent * 1000) / s.rate <= now) {
          s.sent++;
          this.fire(name, s.key);
        }
      }
      this.timer = setTimeout(tick, 2);
    };
    tick();
  }

  setStream(name: StreamName, key: string, rate: number): void {
    this.streams.set(name, { key, rate, begin: this.now(), sent: 0 });
  }

  dropStream(name: StreamName): void {
    this.streams.delete(name);
  }

  stop(): void {
    clearTimeout(this.timer);
    this.streams.clear();
  }

  /** Waits (bounded) for the requests in flight. */
  async drain(maxMs: number): Promise<number> {
    const deadline = Date.now() + maxMs;
    while (this.inflight > 0 && Date.now() < deadline) await sleep(50);
    return this.inflight;
  }

  close(): Promise<void> {
    return this.pool.destroy();
  }

  private fire(stream: StreamName, key: string): void {
    const spec = chatRequest(this.origin, 'json', key);
    const id = `${REQUEST_ID_PREFIX}-${this.phase}-${stream}-${++this.seq}`;
    const rec: RequestRecord = { stream, phase: this.phase, id, start: this.now(), end: 0, status: 0, code: '' };
    this.records.push(rec);
    this.inflight++;
    this.pool
      .request({ path: spec.path, method: 'POST', headers: { ...spec.headers, 'x-request-id': id }, body: spec.body ?? null })
      .then(async (res) => {
        const text = await res.body.text();
        rec.status = res.statusCode;
        if (res.statusCode !== 200) {
          try {
            rec.code = String((JSON.parse(text) as { error?: { code?: unknown } }).error?.code ?? '');
          } catch {
            rec.code = 'non-JSON body';
          }
        }
      })
      .catch((err: Error & { code?: string }) => {
        rec.status = 0;
        rec.code = err.code === 'UND_ERR_HEADERS_TIMEOUT' || err.code === 'UND_ERR_BODY_TIMEOUT' ? 'timeout' : (err.code ?? err.message);
      })
      .finally(() => {
        rec.end = this.now();
        this.inflight--;
      });
  }
}

/** Polls `path` one request at a time, a new one every `everyMs` (or right after a slower one). */
class Poller {
  readonly polls: Poll[] = [];
  private stopped = false;
  private loop: Promise<void> | undefined;

  constructor(
    private readonly url: string,
    private readonly everyMs: number,
    private readonly t0: number,
    private readonly read: (status: number, body: string, poll: Poll) => void,
  ) {}

  start(): void {
    this.loop = (async () => {
      while (!this.stopped) {
        const start = performance.now() - this.t0;
        const poll: Poll = { start, end: 0, status: 0 };
        try {
          const res = await fetch(this.url, { signal: AbortSignal.timeout(10_000) });
          const body = await res.text();
          poll.status = res.status;
          this.read(res.status, body, poll);
        } catch (err) {
          poll.body = `client: ${err instanceof Error ? err.message : String(err)}`;
        }
        poll.end = performance.now() - this.t0;
        this.polls.push(poll);
        const wait = this.everyMs - (poll.end - start);
        if (wait > 0) await sleep(wait);
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }
}

function spoolOf(metricsText: string): number | undefined {
  const m = /^tollgate_ledger_spool_events(?:\{[^}]*\})?\s+([0-9.eE+-]+)\s*$/m.exec(metricsText);
  return m?.[1] !== undefined ? Number(m[1]) : undefined;
}

/** A fault: apply it, heal it. pg-lock holds a transaction on a direct connection. */
interface Fault {
  apply(): Promise<void>;
  heal(): Promise<void>;
}

function makeFault(name: FaultName, pg: TcpProxy, redis: TcpProxy, s: OutageSettings): Fault {
  switch (name) {
    case 'pg-refuse':
      return { apply: () => pg.setMode('refuse'), heal: () => pg.setMode('pass') };
    case 'pg-pause':
      return { apply: () => pg.setMode('pause'), heal: () => pg.setMode('pass') };
    case 'pg-drop':
      return { apply: () => pg.setMode('drop'), heal: () => pg.setMode('pass') };
    case 'redis-refuse':
      return { apply: () => redis.setMode('refuse'), heal: () => redis.setMode('pass') };
    case 'redis-pause':
      return { apply: () => redis.setMode('pause'), heal: () => redis.setMode('pass') };
    case 'pg-lock': {
      // A direct connection (not through the proxy): the server answers, the table is locked.
      const sql = postgres(s.postgresUrl, { max: 1, connect_timeout: 5, onnotice: () => {} });
      let release: () => void = () => {};
      let tx: Promise<unknown> = Promise.resolve();
      return {
        async apply() {
          const held = new Promise<void>((r) => (release = r));
          let locked!: () => void;
          let failed!: (e: unknown) => void;
          const lockedP = new Promise<void>((res, rej) => ((locked = res), (failed = rej)));
          tx = sql
            .begin(async (t) => {
              await t`set local lock_timeout = '5s'`;
              await t.unsafe(`lock table "${s.postgresSchema}".api_keys in access exclusive mode`);
              locked();
              await held;
            })
            .catch((e: unknown) => failed(e));
          await lockedP;
        },
        async heal() {
          release();
          await Promise.race([tx, sleep(10_000)]);
          await sql.end({ timeout: 2 }).catch(() => undefined);
        },
      };
    }
  }
}

function summarizeLog(file: string): LogSummary {
  const out: LogSummary = { lines: 0, requestWarn: 0, warn: 0, error: 0, top: [] };
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return out;
  }
  const counts = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line) continue;
    out.lines++;
    try {
      const o = JSON.parse(line) as { level?: number; msg?: string; err?: { message?: string } };
      const level = o.level ?? 0;
      if (level < 40) continue;
      if (o.msg === 'request') {
        out.requestWarn++;
        continue;
      }
      if (level >= 50) out.error++;
      else out.warn++;
      const msg = `${o.msg ?? ''}${o.err?.message ? `: ${o.err.message.slice(0, 70)}` : ''}`;
      counts.set(msg, (counts.get(msg) ?? 0) + 1);
    } catch {
      // not JSON
    }
  }
  out.top = [...counts.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 5)
    .map(([msg, n]) => ({ msg, n }));
  return out;
}

/** A record with its times in whole ms (for the raw results). */
function rounded<T extends { start: number; end: number }>(r: T): T {
  return { ...r, start: Math.round(r.start), end: Math.round(r.end) };
}

/** The first `n` non-200 answers of each stream in each phase. */
function sampleNotOk(records: RequestRecord[], n: number): RequestRecord[] {
  const seen = new Map<string, number>();
  const out: RequestRecord[] = [];
  for (const r of records) {
    if (r.status === 200) continue;
    const k = `${r.phase}/${r.stream}`;
    const c = seen.get(k) ?? 0;
    if (c >= n) continue;
    seen.set(k, c + 1);
    out.push(rounded(r));
  }
  return out;
}

/** Requests per second of each stream, by status, for the raw results (a compact timeline). */
function timeline(records: RequestRecord[], phases: PhaseTimes[]): unknown[] {
  return phases.map((t, i) => {
    const seconds: Record<string, unknown>[] = [];
    for (let from = t.leadStart; from < t.end; from += 1_000) {
      const slice = records.filter((r) => r.phase === i && r.start >= from && r.start < from + 1_000);
      const row: Record<string, unknown> = { t: Math.round((from - t.faultStart) / 100) / 10 };
      for (const stream of ['known', 'limitsOnly', 'unknown'] as StreamName[]) {
        const rs = slice.filter((r) => r.stream === stream);
        if (!rs.length) continue;
        const statuses: Record<string, number> = {};
        for (const r of rs) {
          const k = r.status === 200 ? '200' : `${r.status}${r.code ? ` ${r.code}` : ''}`;
          statuses[k] = (statuses[k] ?? 0) + 1;
        }
        // e.g. "200 x50, max 26 ms"
        row[stream] = `${Object.entries(statuses)
          .map(([k, n]) => `${k} x${n}`)
          .join(', ')}, max ${Math.round(Math.max(...rs.map((r) => r.end - r.start)))} ms`;
      }
      seconds.push(row);
    }
    return { fault: t.fault, perSecondFromFaultStart: seconds };
  });
}

export const outagesScenario: Scenario = {
  name: 'outages',
  description: 'Latency during each PostgreSQL / Redis fault (refuse, partition, dropped bytes, table lock) and time to recover, through loopback proxies',
  async run(bs: BenchSettings): Promise<ScenarioReport> {
    const { date, machine } = bs;
    const s = outageSettings(date);
    const unregister = await reserveStores({ ...s, schemas: [s.postgresSchema] }).catch((err: Error) => {
      throw new Error(`outages needs both Redis and PostgreSQL: ${err.message}`);
    });
    const tmp = mkdtempSync(join(tmpdir(), 'tollgate-bench-outages-'));
    const logFile = join(RESULTS_DIR, `outages-${fileStamp(date)}.log`);
    const cli = tollgateCli(bs.root);
    const env = childEnv();
    const pgTarget = targetPort(s.postgresUrl, 5432);
    const redisTarget = targetPort(s.redisUrl, 6379);
    let pgProxy: TcpProxy | undefined;
    let redisProxy: TcpProxy | undefined;
    let sim: HttpTarget | undefined;
    let gw: HttpTarget | undefined;
    let traffic: Traffic | undefined;
    const pollers: Poller[] = [];
    const phases: PhaseTimes[] = [];
    let ledger: LedgerCheck = { answered200: 0, withRow: 0, missingIds: [], duplicateIds: [], rowsByStatus: {}, rowsNotSeenAs200: 0, noAnswer: 0 };
    let gatewayExit: string | null = null;
    const cleanup: string[] = [];
    try {
      pgProxy = await startTcpProxy(pgTarget.host, pgTarget.port);
      redisProxy = await startTcpProxy(redisTarget.host, redisTarget.port);
      bs.log(`proxies: PostgreSQL :${pgProxy.port} -> ${pgTarget.port}, Redis :${redisProxy.port} -> ${redisTarget.port}`);
      sim = await startSimulator({ cli, cwd: tmp, env });
      const port = await freePort();
      const storage = {
        kind: 'distributed',
        redisUrl: viaProxy(s.redisUrl, redisProxy),
        postgresUrl: viaProxy(s.postgresUrl, pgProxy),
        postgresSchema: s.postgresSchema,
        redisPrefix: s.redisPrefix,
        dir: join(tmp, 'state'),
      };
      const configFile = writeGatewayConfig(join(tmp, 'tollgate.yaml'), gatewayConfig({ port, simOrigin: sim.origin, storage, extra: { tiers: TIERS } }));

      bs.log(`tenants and keys (PostgreSQL schema ${s.postgresSchema}, Redis prefix ${s.redisPrefix})`);
      await runCommand('tollgate tenants create', process.execPath, [cli, 'tenants', 'create', 'bench', '--id', 'bench', '--tier', 'standard', '--config', configFile], { cwd: tmp });
      await runCommand('tollgate tenants create', process.execPath, [cli, 'tenants', 'create', 'limits-only', '--id', 'limits-only', '--tier', 'premium', '--config', configFile], { cwd: tmp });
      const knownKey = await createKey(cli, configFile, tmp, 'bench', 'known');
      const limitsOnlyKey = await createKey(cli, configFile, tmp, 'limits-only', 'known-limits-only');
      // The keys each fault's "unknown" stream uses: they exist before the gateway starts, and it sees each first during its fault.
      const unknownKeys = await Promise.all(s.faults.map((f) => createKey(cli, configFile, tmp, 'bench', `unknown-${f}`)));

      bs.log(`starting the gateway on :${port} (log: ${relative(bs.root, logFile)})`);
      gw = await startGateway({ name: 'tollgate', cli, configFile, port, cwd: tmp, env, logFile });
      const origin = gw.origin;
      await checkRequest(chatRequest(origin, 'json', knownKey), gw.proc, 'known key');
      const limitsHeaders = await checkRequest(chatRequest(origin, 'json', limitsOnlyKey), gw.proc, 'limits-only key');
      if (!limitsHeaders.get('x-ratelimit-limit-requests')) throw new Error('the limits-only key answered without x-ratelimit-limit-requests: its tier limits do not apply');

      const t0 = performance.now();
      const now = () => performance.now() - t0;
      const readyz = new Poller(`${origin}/readyz`, s.readyzEveryMs, t0, (_st, body, poll) => (poll.body = body.slice(0, 400)));
      const metrics = new Poller(`${origin}/metrics`, s.metricsEveryMs, t0, (st, body, poll) => {
        if (st === 200) {
          const v = spoolOf(body);
          if (v !== undefined) poll.spool = v;
        }
      });
      pollers.push(readyz, metrics);
      traffic = new Traffic(origin, t0, s.clientTimeoutMs);
      traffic.setStream('known', knownKey, s.knownRate);
      traffic.setStream('limitsOnly', limitsOnlyKey, s.limitsOnlyRate);
      traffic.start();
      readyz.start();
      metrics.start();
      bs.log(`warm-up ${bs.warmupSeconds} s at ${s.knownRate} + ${s.limitsOnlyRate} req/s`);
      await sleep(bs.warmupSeconds * 1000);

      for (const [i, name] of s.faults.entries()) {
        traffic.phase = i;
        const t: PhaseTimes = { fault: name, leadStart: now(), faultStart: 0, heal: 0, end: 0, notes: [] };
        phases.push(t);
        await sleep(s.leadS * 1000);
        const fault = makeFault(name, pgProxy, redisProxy, s);
        bs.log(`${name}: fault on for ${s.faultS} s`);
        try {
          await fault.apply();
        } catch (err) {
          t.notes.push(`applying the fault failed: ${err instanceof Error ? err.message : String(err)}`);
        }
        t.faultStart = now();
        traffic.setStream('unknown', unknownKeys[i] as string, s.unknownRate);
        await sleep(s.faultS * 1000);
        try {
          await fault.heal();
        } catch (err) {
          t.notes.push(`healing the fault failed: ${err instanceof Error ? err.message : String(err)}`);
        }
        t.heal = now();
        bs.log(`${name}: healed; watching ${s.watchS} s`);
        await sleep(s.watchS * 1000);
        traffic.dropStream('unknown');
        t.end = now();
        if (gw.proc.exit) {
          gatewayExit = `after ${name}: ${gw.proc.exit.signal ?? `exit code ${gw.proc.exit.code}`}`;
          bs.log(`the gateway exited: ${gatewayExit}`);
          break;
        }
      }
      traffic.stop();
      const left = await traffic.drain(s.clientTimeoutMs + 2_000);
      if (left) bs.log(`${left} requests still in flight after the drain: counted as no answer`);
      // The spool drains to the ledger: wait (bounded) for it to be empty before stopping the gateway.
      const deadline = Date.now() + 30_000;
      while (Date.now() < deadline) {
        const last = metrics.polls.at(-1);
        if (last?.spool === 0 && last.start > now() - 1_500) break;
        await sleep(250);
      }
      for (const p of pollers) await p.stop();
    } finally {
      traffic?.stop();
      await traffic?.close().catch(() => undefined);
      for (const p of pollers) await p.stop().catch(() => undefined);
      // Heal whatever is still faulted, so the gateway's last ledger flush can reach PostgreSQL.
      await pgProxy?.setMode('pass').catch(() => undefined);
      await redisProxy?.setMode('pass').catch(() => undefined);
      if (gw) {
        if (gw.proc.exit && !gatewayExit) gatewayExit = gw.proc.exit.signal ?? `exit code ${gw.proc.exit.code}`;
        await gw.proc.stop(15_000);
      }
      await sim?.proc.stop();
      // Ledger rows of the bench's requests (the gateway has flushed on its way out).
      if (traffic) {
        const sql = postgres(s.postgresUrl, { max: 1, connect_timeout: 5, onnotice: () => {} });
        try {
          const rows = await sql<{ request_id: string; status: number }[]>`select request_id, status from ${sql(s.postgresSchema)}.usage_events where request_id like ${`${REQUEST_ID_PREFIX}-%`}`;
          ledger = checkLedger(traffic.records, [...rows]);
        } catch (err) {
          ledger = { ...ledger, error: err instanceof Error ? err.message : String(err) };
        } finally {
          await sql.end({ timeout: 2 }).catch(() => undefined);
        }
      }
      await pgProxy?.close().catch(() => undefined);
      await redisProxy?.close().catch(() => undefined);
      try {
        cleanup.push(`Redis keys deleted: ${await deleteRedisKeys(s.redisUrl, s.redisPrefix)}`);
        cleanup.push(`schema dropped: ${await dropSchema(s.postgresUrl, s.postgresSchema)}`);
        unregister();
      } catch (err) {
        cleanup.push(`clean-up failed: ${err instanceof Error ? err.message : String(err)}`);
      }
      bs.log(`clean-up: ${cleanup.join('; ')}`);
      rmSync(tmp, { recursive: true, force: true });
    }

    const records = traffic?.records ?? [];
    const [readyzPolls, metricsPolls] = [pollers[0]?.polls ?? [], pollers[1]?.polls ?? []];
    const results = phases.map((t, i) => analyzeFault(i, t, records, readyzPolls, metricsPolls));
    ledgerByPhase(results, records, new Set(ledger.missingIds));
    const logSummary = summarizeLog(logFile);
    const doc = buildReport({ results, ledger, settings: s, date, machine, gatewayExit, logFile: relative(bs.root, logFile), logSummary });
    return scenarioResult('outages', bs, { doc, verdicts: [] }, {
      settings: { ...s, redisUrl: redact(s.redisUrl), postgresUrl: redact(s.postgresUrl), warmupSeconds: bs.warmupSeconds },
      logFile: relative(bs.root, logFile),
      gatewayExit,
      phases,
      results,
      ledger: { ...ledger, missingIds: ledger.missingIds.slice(0, 200), duplicateIds: ledger.duplicateIds.slice(0, 200) },
      logSummary,
      cleanup,
      readyzChanges: readyzPolls.filter((p, i) => i === 0 || p.status !== readyzPolls[i - 1]?.status || p.body !== readyzPolls[i - 1]?.body).map(rounded),
      metricsDuringFaults: metricsPolls
        .filter((p) => phases.some((t) => p.start >= t.faultStart - 1_000 && p.start < t.heal + 5_000))
        .map((p) => `${Math.round(p.start)} ms: ${p.status}, ${Math.round(p.end - p.start)} ms, spool ${p.spool ?? 'n/a'}`),
      timeline: timeline(records, phases),
      // The first few non-200 answers of each stream in each phase.
      notOkSample: sampleNotOk(records, 5),
    });
  },
};
