/**
 * What the embedded database keeps per request, and what the ledger's hourly roll-ups bring it
 * down to (issue 15, item 7: the database grew ~726 bytes per request for good).
 *
 * In process, on a fresh embedded database file (openDatabase: WAL, auto_vacuum INCREMENTAL) with
 * the gateway's writer thread, through the real adapters: `SqliteLedger.append` (batches of 100,
 * as LedgerWriter writes them) and `SqliteRequestLog.append` (batches of 500, requestLog.batchSize),
 * BENCH_ROLLUP_REQUESTS requests (default 300,000) arriving at 300 req/s of simulated time. Each
 * request is a usage event and a request-log row as the gateway writes them (ids `req_` + 32 hex,
 * tenants and keys `ten_`/`key_` + 16 characters, no prompt text: the default, text is opt-in).
 * Traffic: 20 tenants x 5 keys, BENCH_ROLLUP_USERS end users (default 1,000; each on one key;
 * 20% of requests name none), chat (80%; `auto` served by one of two tiers, or a model by name)
 * and embeddings, 97% 200 / 2% 429 / 1% 502, 10% cache hits, half the chat streamed.
 *
 * Bytes: SQLite's `dbstat` (pages of each table and its indexes, page size included), divided by
 * the rows. Roll-up: the whole ledger rolled up by `UsageRollup` (default config, the clock moved
 * past the retention) on the writer thread, with a monitor on the event loop (the
 * event loop's delay, `monitorEventLoopDelay`) and each batch's round trip timed (the time the writer holds the
 * database's write lock, which a main-connection write may wait for); then the same statement on
 * the main connection (no writer thread: the CLI, tests) at several batch sizes.
 *
 * Steady state at 300 req/s with the default config: detail events for `ledger.detailRetentionDays`
 * + request-log rows for `requestLog.retentionDays` + roll-up rows (distinct tenant/key/user/route/
 * model combinations per hour, counted over one simulated hour of the same traffic, x 24 per day:
 * these are kept for good) + the WAL (cut back to journal_size_limit, 64 MiB).
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { join } from 'node:path';
import { ledgerSchema } from '../../src/config/ledger-schema.js';
import { requestLogSchema } from '../../src/config/request-log-schema.js';
import { UsageRollup } from '../../src/metering/usage-rollup.js';
import { createLogger } from '../../src/observability/logger.js';
import { openDatabase, type Database } from '../../src/storage/sqlite/database.js';
import { SqliteLedger } from '../../src/storage/sqlite/ledger.js';
import { SqliteRequestLog } from '../../src/storage/sqlite/request-log.js';
import { SqliteWriterThread } from '../../src/storage/sqlite/writer-thread.js';
import type { CacheOutcome, RequestLogEntry, UsageEvent } from '../../src/storage/types.js';
import { prng } from '../lib/random.js';
import { section, table, text, verdictTable } from '../lib/report.js';
import { describeMachine } from '../lib/results.js';
import { positiveEnv, type BenchSettings, type Scenario, type ScenarioReport, type Verdict } from '../lib/scenario.js';
import { fmt } from '../lib/table.js';

const RATE = 300; // req/s
const DAY_MS = 86_400_000;
const PER_DAY = RATE * 86_400;
const T0 = Date.UTC(2026, 0, 5);
const TENANTS = 20;
const KEYS_PER_TENANT = 5;
/**
 * Targets: the embedded database at 300 req/s with the default config stays within this (GB,
 * decimal); once there it grows only by roll-ups, at most this share of what it grew before; a
 * roll-up batch holds the event loop (or, on the writer thread, the write lock) at most this long.
 */
const MAX_STEADY_GB = 100;
const MAX_GROWTH_SHARE = 0.02;
const MAX_HOLD_MS = 5;

const hex = (r: () => number, n: number) => Array.from({ length: n }, () => Math.floor(r() * 16).toString(16)).join('');

interface Traffic {
  tenants: string[];
  keys: string[];
  users: string[];
}

function traffic(users: number): Traffic {
  const r = prng(1);
  const tenants = Array.from({ length: TENANTS }, () => `ten_${hex(r, 16)}`);
  const keys = Array.from({ length: TENANTS * KEYS_PER_TENANT }, () => `key_${hex(r, 16)}`);
  return { tenants, keys, users: Array.from({ length: users }, (_, i) => `user-${100_000 + i}`) };
}

/** Request `i` of the simulated traffic: its usage event and its request-log row. */
function request(t: Traffic, r: () => number, i: number): { event: UsageEvent; row: RequestLogEntry } {
  const ts = T0 + Math.floor((i * 1000) / RATE);
  const u = Math.floor(r() * t.users.length);
  const named = r() >= 0.2;
  const keyIndex = u % t.keys.length;
  const tenantId = t.tenants[Math.floor(keyIndex / KEYS_PER_TENANT)]!;
  const keyId = t.keys[keyIndex]!;
  const userId = named ? t.users[u]! : '';
  const embeddings = r() < 0.2;
  const tiered = !embeddings && r() < 0.6;
  const large = r() < 0.3;
  const requestedModel = embeddings ? 'sim-embed' : tiered ? 'auto' : large ? 'sim-large' : 'sim-small';
  const servedModel = embeddings ? 'sim-embed' : tiered ? (large ? 'sim-large' : 'sim-small') : requestedModel;
  const d = r();
  const status = d < 0.97 ? 200 : d < 0.99 ? 429 : 502;
  const ok = status === 200;
  const cache: CacheOutcome = embeddings ? 'none' : r() < 0.1 ? 'hit' : 'miss';
  const stream = !embeddings && r() < 0.5;
  const promptTokens = ok ? 20 + Math.floor(r() * 900) : 0;
  const completionTokens = ok && !embeddings ? 10 + Math.floor(r() * 600) : 0;
  const costPico = ok && cache !== 'hit' ? promptTokens * 150_000 + completionTokens * 600_000 : 0;
  const latencyMs = Math.round(ok ? 80 + r() * 2_000 : 3 + r() * 30);
  const id = `req_${hex(r, 32)}`;
  const deployment = ok ? `${servedModel}@sim` : '';
  const event: UsageEvent = {
    requestId: id, ts, tenantId, keyId, userId, route: embeddings ? 'embeddings' : 'chat', requestedModel,
    servedModel: ok ? servedModel : '', deployment, promptTokens, completionTokens, cachedTokens: 0, costPico,
    savedPico: cache === 'hit' ? 1_000_000 : 0, latencyMs, ttftMs: stream && ok ? Math.round(latencyMs / 5) : null, cache, status,
    attempts: status === 502 ? 3 : 1, usageReported: true, ...(tiered ? { tier: large ? 'large' : 'small' } : {}),
  };
  const row: RequestLogEntry = {
    id, requestId: id, ts, tenantId, keyId, userId: userId || null, route: event.route, requestedModel,
    servedModel: ok ? servedModel : null, deployment: deployment || null, tier: event.tier ?? null, status,
    errorCode: status === 429 ? 'rate_limited' : status === 502 ? 'upstream_error' : null, cache,
    latencyMs: latencyMs + 0.3, ttftMs: event.ttftMs === null ? null : event.ttftMs + 0.1, upstreamMs: ok && cache !== 'hit' ? latencyMs - 1.2 : 0,
    attempts: event.attempts, promptTokens, completionTokens, costPico, stream, traceId: null, jobId: null, prompt: null, answer: null,
  };
  return { event, row };
}

interface Footprint {
  /** Bytes of each table with its indexes (dbstat pgsize). */
  tables: Record<string, number>;
  rows: Record<string, number>;
  fileBytes: number;
}

function footprint(db: Database, file: string): Footprint {
  const byName = db.prepare("SELECT name, tbl_name AS tbl FROM sqlite_master WHERE type IN ('table', 'index')").all() as Array<{ name: string; tbl: string }>;
  const tableOf = new Map(byName.map((x) => [x.name, x.tbl]));
  const tables: Record<string, number> = {};
  for (const { name, bytes } of db.prepare('SELECT name, SUM(pgsize) AS bytes FROM dbstat GROUP BY name').all() as Array<{ name: string; bytes: number }>) {
    const t = tableOf.get(name) ?? name;
    tables[t] = (tables[t] ?? 0) + bytes;
  }
  const rows: Record<string, number> = {};
  for (const t of ['usage_events', 'usage_rollups', 'request_log']) rows[t] = db.prepare(`SELECT COUNT(*) FROM ${t}`).pluck().get() as number;
  let fileBytes = 0;
  for (const f of [file, `${file}-wal`]) {
    try {
      fileBytes += statSync(f).size;
    } catch {
      // no WAL
    }
  }
  return { tables, rows, fileBytes };
}

const pct = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? 0;
};

/**
 * Runs `body` under `monitorEventLoopDelay` (a 1 ms timer's lateness, in a histogram): how long
 * the event loop was held at a time. (A setImmediate spin would take a core from the writer
 * thread for the whole pass, and keeping every gap costs memory.)
 */
async function withProbe<T>(body: () => Promise<T>): Promise<{ result: T; maxHoldMs: number; gaps: { p99: number; p999: number; mean: number } }> {
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  const result = await body();
  h.disable();
  const ms = (ns: number) => ns / 1e6;
  return { result, maxHoldMs: ms(h.max), gaps: { p99: ms(h.percentile(99)), p999: ms(h.percentile(99.9)), mean: ms(h.mean) } };
}

const MB = 1e6;
const GB = 1e9;

export const ledgerRollupScenario: Scenario = {
  name: 'ledger-rollup',
  description: 'in process: embedded database bytes per request (usage event, request-log row, roll-up row), cost of the roll-up, steady-state size of a day at 300 req/s',
  async run(s: BenchSettings): Promise<ScenarioReport> {
    const { date, machine } = s;
    const n = Math.floor(positiveEnv('BENCH_ROLLUP_REQUESTS', 300_000));
    const users = Math.floor(positiveEnv('BENCH_ROLLUP_USERS', 1_000));
    const ledgerDefaults = ledgerSchema.parse({});
    const requestLogDefaults = requestLogSchema.parse({});
    const t = traffic(users);
    const dir = mkdtempSync(join(tmpdir(), 'tollgate-bench-rollup-'));
    const log = createLogger('silent');
    try {
      // 1. Fill a fresh database through the gateway's write paths.
      const file = join(dir, 'tollgate.db');
      const db = openDatabase(file);
      const writer = new SqliteWriterThread(db, file);
      const ledger = new SqliteLedger(db, { writer });
      const requestLog = new SqliteRequestLog(db, { writer });
      const r = prng(7);
      const started = performance.now();
      // The writer thread's existing writes, timed like the roll-up's batches below (round trips).
      const appendMs: number[] = [];
      const logMs: number[] = [];
      for (let i = 0; i < n; i += 500) {
        const batch = Array.from({ length: Math.min(500, n - i) }, (_, j) => request(t, r, i + j));
        for (let j = 0; j < batch.length; j += 100) {
          const a0 = performance.now();
          await ledger.append(batch.slice(j, j + 100).map((b) => b.event));
          appendMs.push(performance.now() - a0);
        }
        const l0 = performance.now();
        await requestLog.append(batch.map((b) => b.row));
        logMs.push(performance.now() - l0);
      }
      const fillS = (performance.now() - started) / 1000;
      await writer.maintain(0);
      const filled = footprint(db, file);
      const eventBytes = filled.tables['usage_events']! / n;
      const logBytes = filled.tables['request_log']! / n;
      s.log(`${n} requests written in ${fmt(fillS, 1)} s: usage event ${fmt(eventBytes, 0)} B, request-log row ${fmt(logBytes, 0)} B per request; file + WAL ${fmt(filled.fileBytes / MB, 1)} MB`);

      // A report over everything (detail), to compare with the same report after the roll-up.
      const query = { from: 0, to: Number.MAX_SAFE_INTEGER, groupBy: ['tenant', 'model', 'day'] as const };
      const q0 = performance.now();
      const reportBefore = await ledger.aggregate({ ...query, groupBy: [...query.groupBy] });
      const reportBeforeMs = performance.now() - q0;
      const spentBefore = await ledger.spent({}, 0, Number.MAX_SAFE_INTEGER);

      // 2. The roll-up job with the default config, on the writer thread, clock past the retention.
      const rollUp = ledger.rollUp.bind(ledger);
      const batchMs: number[] = [];
      const timed = {
        rollUp: async (before: number, limit: number) => {
          const b0 = performance.now();
          const k = await rollUp(before, limit);
          batchMs.push(performance.now() - b0);
          return k;
        },
      };
      const now = T0 + ((ledgerDefaults.detailRetentionDays ?? 7) + 1) * DAY_MS;
      const job = new UsageRollup({ ledger: timed, config: ledgerDefaults, log, now: () => now });
      // The machine's own noise: the same monitor over 10 s of doing nothing, just before the pass.
      const idle = await withProbe(() => new Promise<void>((resolve) => setTimeout(resolve, 10_000)));
      const p0 = performance.now();
      const { result: pass, maxHoldMs, gaps } = await withProbe(() => job.run());
      const passS = (performance.now() - p0) / 1000;
      await job.close();
      const q1 = performance.now();
      const reportAfter = await ledger.aggregate({ ...query, groupBy: [...query.groupBy] });
      const reportAfterMs = performance.now() - q1;
      const spentAfter = await ledger.spent({}, 0, Number.MAX_SAFE_INTEGER);
      const same = JSON.stringify(reportBefore) === JSON.stringify(reportAfter) && spentBefore === spentAfter;
      const freed = await writer.maintain(0);
      const rolled = footprint(db, file);
      const rollupRows = rolled.rows['usage_rollups']!;
      const rollupRowBytes = rolled.tables['usage_rollups']! / Math.max(1, rollupRows);
      s.log(`rolled up ${pass.rolledUp} events in ${pass.batches} batches of ${ledgerDefaults.rollupBatchSize} in ${fmt(passS, 1)} s into ${rollupRows} rows (${fmt(rollupRowBytes, 0)} B each); longest event-loop hold ${fmt(maxHoldMs, 2)} ms; reports equal: ${same}`);
      await ledger.close();

      // 3. The same statement on the main connection (no writer thread), by batch size.
      const file2 = join(dir, 'main.db');
      const db2 = openDatabase(file2);
      const main = new SqliteLedger(db2);
      const sizes = [100, 250, 500, 1_000, 2_000];
      const perSize = 20;
      const need = sizes.reduce((a, b) => a + b * perSize, 0);
      const r2 = prng(9);
      for (let i = 0; i < need; i += 100) await main.append(Array.from({ length: Math.min(100, need - i) }, (_, j) => request(t, r2, i + j).event));
      const mainRows = sizes.map((size) => {
        const ms: number[] = [];
        for (let k = 0; k < perSize; k++) {
          const b0 = performance.now();
          void main.rollUp(now, size); // synchronous underneath: the statement runs before this returns
          ms.push(performance.now() - b0);
        }
        return { size, p50: pct(ms, 0.5), max: Math.max(...ms), rowsPerS: size / (pct(ms, 0.5) / 1000) };
      });
      await main.close();

      // 4. Roll-up rows per hour: distinct (tenant, key, user, route, requested, served model) in an hour of this traffic.
      const combos = new Set<string>();
      const r3 = prng(11);
      for (let i = 0; i < RATE * 3600; i++) {
        const { event: e } = request(t, r3, i);
        combos.add(`${e.tenantId}|${e.keyId}|${e.userId}|${e.route}|${e.requestedModel}|${e.servedModel}`);
      }
      const rollupRowsPerDay = combos.size * 24;

      // 5. Steady state at 300 req/s, default config.
      const detailDays = ledgerDefaults.detailRetentionDays ?? Infinity;
      const logDays = requestLogDefaults.retentionDays;
      const detail = eventBytes * PER_DAY * detailDays;
      const logSize = logBytes * PER_DAY * logDays;
      const rollupPerDay = rollupRowsPerDay * rollupRowBytes;
      const wal = 64 * MB;
      const steady = detail + logSize + wal;
      const before = { perDay: (eventBytes + logBytes) * PER_DAY, logSize: logBytes * PER_DAY * 7 };

      const verdicts: Verdict[] = [
        { name: 'reports and lifetime spend equal before and after the roll-up', target: 'equal', actual: same ? 'equal' : 'DIFFERENT', pass: same },
        {
          name: 'steady-state size of the embedded database at 300 req/s, default config (detail + request log + WAL; roll-ups add per day)',
          target: `<= ${MAX_STEADY_GB} GB`,
          actual: `${fmt(steady / GB, 1)} GB + ${fmt(rollupPerDay / MB, 1)} MB/day of roll-ups`,
          pass: steady / GB <= MAX_STEADY_GB,
        },
        {
          name: 'growth per day once in steady state (roll-ups) against before (usage events kept for good)',
          target: `<= ${MAX_GROWTH_SHARE * 100}%`,
          actual: `${fmt((100 * rollupPerDay) / (eventBytes * PER_DAY), 2)}% (${fmt(rollupPerDay / MB, 1)} MB/day against ${fmt((eventBytes * PER_DAY) / GB, 1)} GB/day)`,
          pass: rollupPerDay <= MAX_GROWTH_SHARE * eventBytes * PER_DAY,
        },
        {
          name: `a roll-up batch of ${ledgerDefaults.rollupBatchSize} (default) on the writer thread: its hold of the write lock (round trip), p50`,
          target: `<= ${MAX_HOLD_MS} ms`,
          actual: `${fmt(pct(batchMs, 0.5), 2)} ms (p99 ${fmt(pct(batchMs, 0.99), 2)} ms, max ${fmt(Math.max(...batchMs), 2)} ms)`,
          pass: pct(batchMs, 0.5) <= MAX_HOLD_MS,
        },
        {
          name: 'the same, against the writes the writer thread already does (a request-log batch of 500, p50, same run)',
          target: '<= 1x',
          actual: `${fmt(pct(batchMs, 0.5) / pct(logMs, 0.5), 2)}x (request-log batch of 500: p50 ${fmt(pct(logMs, 0.5), 2)} ms; ledger batch of 100: p50 ${fmt(pct(appendMs, 0.5), 2)} ms)`,
          pass: pct(batchMs, 0.5) <= pct(logMs, 0.5),
        },
        {
          name: 'longest event-loop hold during the pass (writer thread; wall time, includes other processes taking the core)',
          target: `<= ${MAX_HOLD_MS} ms`,
          actual: `${fmt(maxHoldMs, 2)} ms (delay p99 ${fmt(gaps.p99, 2)} ms, p99.9 ${fmt(gaps.p999, 2)} ms; the same process idle for 10 s just before: max ${fmt(idle.maxHoldMs, 2)} ms, p99 ${fmt(idle.gaps.p99, 2)} ms; load average at start ${machine.loadAvg1})`,
          pass: maxHoldMs <= MAX_HOLD_MS,
        },
      ];

      const sizeTable = [
        ['usage_events (with its 5 indexes)', fmt(filled.tables['usage_events']! / MB, 1), String(filled.rows['usage_events']), fmt(eventBytes, 0)],
        ['request_log (with its 2 indexes)', fmt(filled.tables['request_log']! / MB, 1), String(filled.rows['request_log']), fmt(logBytes, 0)],
        ['both, per request', '', '', fmt(eventBytes + logBytes, 0)],
        ['usage_rollups (with its 3 indexes), after the roll-up', fmt(rolled.tables['usage_rollups']! / MB, 2), String(rollupRows), fmt(rollupRowBytes, 0)],
      ];
      const steadyTable = [
        [`usage events in detail (${detailDays} days, ledger.detailRetentionDays)`, fmt(detail / GB, 1)],
        [`request log (${logDays} days, requestLog.retentionDays)`, fmt(logSize / GB, 1)],
        ['WAL (journal_size_limit after a checkpoint)', fmt(wal / GB, 2)],
        ['**steady state**', `**${fmt(steady / GB, 1)}**`],
        [`roll-ups: ${combos.size.toLocaleString('en-US')} rows an hour x 24 x ${fmt(rollupRowBytes, 0)} B, kept for good`, `+${fmt(rollupPerDay / MB, 1)} MB/day (${fmt((rollupPerDay * 365) / GB, 2)} GB/year)`],
        ['before (no roll-up): usage events for good, request log 7 days', `+${fmt((eventBytes * PER_DAY) / GB, 1)} GB/day for good, + ${fmt(before.logSize / GB, 1)} GB`],
      ];
      const mainTable = mainRows.map((m) => [String(m.size), fmt(m.p50, 2), fmt(m.max, 2), Math.round(m.rowsPerS).toLocaleString('en-US')]);
      const doc = {
        title: 'Ledger roll-ups: database size per request, steady state at 300 req/s (`npm run bench -- ledger-rollup`)',
        context: [`Run ${date.toISOString()} on ${describeMachine(machine)}.`],
        blocks: [
          text(
            `Method: in process, a fresh embedded database (WAL, auto_vacuum INCREMENTAL) with the gateway's writer thread; ${n.toLocaleString('en-US')} requests at 300 req/s of simulated time written through \`SqliteLedger.append\` (batches of 100) and \`SqliteRequestLog.append\` (batches of 500): per request a usage event and a request-log row as the gateway writes them (ids \`req_\` + 32 hex, no prompt text: text is opt-in). Traffic: ${TENANTS} tenants x ${KEYS_PER_TENANT} keys, ${users.toLocaleString('en-US')} end users (20% of requests name none), chat 80% (tiered \`auto\` or a model by name) and embeddings, 97% 200 / 2% 429 / 1% 502, 10% cache hits. Bytes: SQLite's \`dbstat\` (pages of each table and its indexes) / rows. Then the clock is moved past \`ledger.detailRetentionDays\` and \`UsageRollup\` (default config: batches of ${ledgerDefaults.rollupBatchSize}, ${ledgerDefaults.rollupPauseMs} ms between two) rolls the whole ledger up on the writer thread, under \`monitorEventLoopDelay\`; a report (tenant x model x day) and the lifetime spend are compared before and after. Roll-up rows per hour: the distinct (tenant, key, user, route, requested, served model) of one simulated hour (${(RATE * 3600).toLocaleString('en-US')} requests) of the same traffic. A day at 300 req/s is ${PER_DAY.toLocaleString('en-US')} requests.`,
          ),
          ...section('Bytes per row', table(['table', 'MB', 'rows', 'bytes per row'], sizeTable)),
          ...section('Steady state at 300 req/s, default config', table(['part', 'GB'], steadyTable)),
          ...section(
            'One roll-up pass',
            text(
              `${pass.rolledUp.toLocaleString('en-US')} events in ${pass.batches} batches in ${fmt(passS, 1)} s (${Math.round(pass.rolledUp / passS).toLocaleString('en-US')} events/s with the pauses) into ${rollupRows.toLocaleString('en-US')} roll-up rows. On the writer thread (the event loop runs no SQL of the pass; it posts each batch and waits): event-loop delay (\`monitorEventLoopDelay\`, 1 ms resolution) max ${fmt(maxHoldMs, 2)} ms, p99 ${fmt(gaps.p99, 2)} ms, p99.9 ${fmt(gaps.p999, 2)} ms (wall time: garbage collection and other processes taking the core count too; the same monitor over 10 s of the idle process just before: max ${fmt(idle.maxHoldMs, 2)} ms, p99 ${fmt(idle.gaps.p99, 2)} ms); a batch's round trip (the writer's hold of the write lock, what a main-connection write may wait): p50 ${fmt(pct(batchMs, 0.5), 2)} ms, p99 ${fmt(pct(batchMs, 0.99), 2)} ms, max ${fmt(Math.max(...batchMs), 2)} ms; for comparison, the writes the writer thread already does, timed the same way while filling: a ledger batch of 100 events p50 ${fmt(pct(appendMs, 0.5), 2)} ms (p99 ${fmt(pct(appendMs, 0.99), 2)} ms), a request-log batch of 500 rows p50 ${fmt(pct(logMs, 0.5), 2)} ms (p99 ${fmt(pct(logMs, 0.99), 2)} ms). Pages freed by the next maintenance: ${freed.freedPages.toLocaleString('en-US')} (file + WAL ${fmt(filled.fileBytes / MB, 1)} MB before, ${fmt(rolled.fileBytes / MB, 1)} MB after). Report (tenant x model x day over everything): ${fmt(reportBeforeMs, 1)} ms on ${n.toLocaleString('en-US')} events, ${fmt(reportAfterMs, 1)} ms on the roll-ups; same rows and lifetime spend: ${same ? 'yes' : 'NO'}.`,
            ),
            text('The same statement on the main connection (no writer thread: `tollgate` CLI, tests), 20 batches per size: it holds the event loop this long.'),
            table(['batch', 'p50 ms', 'max ms', 'events/s'], mainTable),
            verdictTable(verdicts),
          ),
        ],
      };
      return {
        doc,
        verdicts,
        raw: {
          date: date.toISOString(), machine, n, users, fillS, filled, rolled, eventBytes, logBytes, rollupRowBytes, rollupRows,
          combosPerHour: combos.size, pass, passS, maxHoldMs, gaps, idle: { maxHoldMs: idle.maxHoldMs, gaps: idle.gaps }, batchMs, appendMs, logMs, mainRows, steady, detail, logSize, rollupPerDay, reportBeforeMs, reportAfterMs, same,
          defaults: { ledger: ledgerDefaults, requestLogRetentionDays: logDays },
        },
      };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
