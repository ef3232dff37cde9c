/**
 * The outages scenario's analysis and report: what the client saw during each dependency fault
 * (statuses, latency), what /readyz and /metrics said, how long the gateway took to recover after
 * the heal, and whether every answered request reached the ledger. Pure functions over the records
 * bench/scenarios/outages.ts collects.
 */
import { list, table, text, type ReportDoc } from '../lib/report.js';
import { describeMachine, type MachineInfo } from '../lib/results.js';
import { percentile } from '../lib/stats.js';

export type FaultName = 'pg-refuse' | 'pg-pause' | 'pg-drop' | 'pg-lock' | 'redis-refuse' | 'redis-pause';

export const FAULTS: { name: FaultName; service: 'postgres' | 'redis'; what: string }[] = [
  { name: 'pg-refuse', service: 'postgres', what: 'PostgreSQL down: its proxy closes every connection and refuses new ones' },
  { name: 'pg-pause', service: 'postgres', what: 'PostgreSQL partitioned: connections stay open, nothing moves either way' },
  { name: 'pg-drop', service: 'postgres', what: 'a middlebox eating bytes: connections stay open, every byte either way is thrown away' },
  { name: 'pg-lock', service: 'postgres', what: 'another connection holds ACCESS EXCLUSIVE on api_keys (PostgreSQL itself answers)' },
  { name: 'redis-refuse', service: 'redis', what: 'Redis down: its proxy closes every connection and refuses new ones' },
  { name: 'redis-pause', service: 'redis', what: 'Redis partitioned: connections stay open, nothing moves either way' },
];

/** known: the key used before the fault (tier with limits + budgets); limitsOnly: a known key of a tier with limits only; unknown: a key this gateway first sees during the fault. */
export type StreamName = 'known' | 'limitsOnly' | 'unknown';

export interface RequestRecord {
  stream: StreamName;
  /** Index of the fault whose phase (lead, fault, watch) the request started in. */
  phase: number;
  /** x-request-id sent (the ledger row's request_id). */
  id: string;
  /** ms since the run's t0. */
  start: number;
  end: number;
  /** HTTP status; 0 = no answer (client error or timeout). */
  status: number;
  /** error.code of a non-2xx body, or the client error (e.g. 'timeout', 'ECONNRESET'); '' for a 200. */
  code: string;
}

export interface Poll {
  start: number;
  end: number;
  /** 0 = no answer. */
  status: number;
  /** /readyz: the body (or the client error). */
  body?: string;
  /** /metrics: tollgate_ledger_spool_events. */
  spool?: number;
}

export interface PhaseTimes {
  fault: FaultName;
  leadStart: number;
  faultStart: number;
  heal: number;
  end: number;
  /** Something that went wrong applying or healing the fault. */
  notes: string[];
}

export interface OutageSettings {
  faultS: number;
  watchS: number;
  leadS: number;
  knownRate: number;
  limitsOnlyRate: number;
  unknownRate: number;
  clientTimeoutMs: number;
  readyzEveryMs: number;
  metricsEveryMs: number;
  faults: FaultName[];
  redisUrl: string;
  postgresUrl: string;
  postgresSchema: string;
  redisPrefix: string;
  tiers: Record<string, unknown>;
  /** The gateway's deadlines (defaults, from src/config/schema.ts). */
  defaults: {
    postgresQueryTimeoutMs: number;
    postgresStatementTimeoutMs: number;
    postgresConnectTimeoutMs: number;
    redisCommandTimeoutMs: number;
    authCacheTtlMs: number;
    authMaxStaleMs: number;
  };
}

interface Latency {
  n: number;
  p50: number;
  p99: number;
  max: number;
}

export interface StreamStats {
  n: number;
  /** "200", "503 storage_unavailable", "no answer: timeout", ... */
  statuses: Record<string, number>;
  /** From sending to the end of the answer (any status; a request with no answer counts until the client gave up). */
  latencyMs: Latency;
  /** Requests started during the fault that were answered before the heal. */
  answeredBeforeHeal: number;
  /** 200s answered after the heal (requests the fault held until then). */
  ok200AfterHeal: number;
}

export interface FaultResult {
  fault: FaultName;
  service: 'postgres' | 'redis';
  what: string;
  notes: string[];
  times: { faultS: number; watchS: number };
  baseline: { known: Latency };
  known: StreamStats;
  limitsOnly: StreamStats;
  unknown: StreamStats;
  readyz: {
    polls: number;
    /** From the fault's start to the end of the first poll started after it that was not 200. */
    notReadyAfterMs: number | null;
    bodyDuringFault: string | null;
    maxLatencyDuringFaultMs: number;
    /** From the heal to the end of the first 200 of a poll started after it. */
    readyAfterHealMs: number | null;
  };
  metrics: { polls: number; ok: number; p50Ms: number; maxMs: number };
  recovery: {
    /** ms after the heal from which every known-key answer is a 200; 'never-failed', or 'not-recovered' within the watch. */
    allOk: number | 'never-failed' | 'not-recovered';
    /** Same with 200 and latency <= fastMs. */
    fast: number | 'never-failed' | 'not-recovered';
    /** The same as allOk for the key first seen during the fault: when a new key authenticates again. */
    unknownOk: number | 'never-failed' | 'not-recovered';
    fastMs: number;
    spoolBefore: number | null;
    spoolPeak: number | null;
    /** ms after the heal until the spool gauge is back at (or below) its level before the fault; 'not-grown' when it never rose above it. */
    spoolBack: number | 'not-grown' | 'not-back' | null;
  };
  ledger?: { answered200: number; withRow: number; missing: number };
}

export interface LogSummary {
  lines: number;
  /** One line per request: those at warn or above (non-2xx answers). */
  requestWarn: number;
  /** Other lines at warn (40) and at error or above (50+). */
  warn: number;
  error: number;
  /** The most frequent other warn/error messages, with the error's message. */
  top: { msg: string; n: number }[];
}

export interface LedgerCheck {
  /** Requests the client saw answered 200. */
  answered200: number;
  /** Of those, how many have their usage_events row. */
  withRow: number;
  missingIds: string[];
  /** Requests with more than one row (billed twice). */
  duplicateIds: string[];
  /** Rows of bench requests by status (the gateway's). */
  rowsByStatus: Record<string, number>;
  /** Rows with status 200 for requests the client did not see as 200 (it gave up, or the answer was cut). */
  rowsNotSeenAs200: number;
  /** Requests the client got no answer for. */
  noAnswer: number;
  error?: string;
}

const fmtS = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

function latencyOf(values: number[]): Latency {
  const sorted = Float64Array.from(values).sort();
  return { n: sorted.length, p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted.length ? (sorted[sorted.length - 1] as number) : Number.NaN };
}

export function statusLabel(r: { status: number; code: string }): string {
  if (r.status === 0) return `no answer: ${r.code || 'error'}`;
  if (r.status === 200) return '200';
  return r.code ? `${r.status} ${r.code}` : String(r.status);
}

function streamStats(records: RequestRecord[], heal: number): StreamStats {
  const statuses: Record<string, number> = {};
  for (const r of records) statuses[statusLabel(r)] = (statuses[statusLabel(r)] ?? 0) + 1;
  return {
    n: records.length,
    statuses,
    latencyMs: latencyOf(records.map((r) => r.end - r.start)),
    answeredBeforeHeal: records.filter((r) => r.status !== 0 && r.end < heal).length,
    ok200AfterHeal: records.filter((r) => r.status === 200 && r.end >= heal).length,
  };
}

/**
 * From when (ms after the heal) every answer is good: the last bad answer's end, counted from the
 * heal (0 when the last bad one came before it). 'not-recovered' when a request started in the
 * last second of the watch was still bad.
 */
function recoveredAt(records: RequestRecord[], t: PhaseTimes, bad: (r: RequestRecord) => boolean): number | 'never-failed' | 'not-recovered' {
  const from = records.filter((r) => r.start >= t.faultStart);
  const bads = from.filter(bad);
  if (bads.length === 0) return 'never-failed';
  if (bads.some((r) => r.start >= t.end - 1_000)) return 'not-recovered';
  const lastEnd = Math.max(...bads.map((r) => r.end));
  return Math.max(0, lastEnd - t.heal);
}

export function analyzeFault(i: number, t: PhaseTimes, records: RequestRecord[], readyz: Poll[], metrics: Poll[]): FaultResult {
  const def = FAULTS.find((f) => f.name === t.fault)!;
  const inPhase = records.filter((r) => r.phase === i);
  const during = (r: { start: number }) => r.start >= t.faultStart && r.start < t.heal;
  const of = (s: StreamName) => inPhase.filter((r) => r.stream === s);
  const lead = of('known').filter((r) => r.start >= t.leadStart && r.start < t.faultStart && r.status === 200);
  const baseline = latencyOf(lead.map((r) => r.end - r.start));
  const fastMs = Math.max(250, 5 * (Number.isFinite(baseline.p99) ? baseline.p99 : 50));

  const rz = readyz.filter((p) => p.start >= t.leadStart && p.start < t.end);
  const firstNot = rz.find((p) => p.start >= t.faultStart && p.status !== 200);
  const firstReady = rz.find((p) => p.start >= t.heal && p.status === 200);
  const rzDuring = rz.filter(during);
  const mx = metrics.filter(during);
  const mxLat = Float64Array.from(mx.filter((p) => p.status === 200).map((p) => p.end - p.start)).sort();

  const spoolPolls = metrics.filter((p) => p.spool !== undefined && p.start >= t.leadStart && p.start < t.end);
  const before = spoolPolls.filter((p) => p.start < t.faultStart).map((p) => p.spool as number);
  const after = spoolPolls.filter((p) => p.start >= t.faultStart).map((p) => p.spool as number);
  const spoolBefore = before.length ? Math.max(...before) : null;
  const spoolPeak = after.length ? Math.max(...after) : null;
  let spoolBack: FaultResult['recovery']['spoolBack'] = null;
  if (spoolBefore !== null && spoolPeak !== null) {
    if (spoolPeak <= spoolBefore) spoolBack = 'not-grown';
    else {
      const back = spoolPolls.find((p) => p.start >= t.heal && (p.spool as number) <= spoolBefore);
      spoolBack = back ? Math.max(0, back.end - t.heal) : 'not-back';
    }
  }

  return {
    fault: t.fault,
    service: def.service,
    what: def.what,
    notes: t.notes,
    times: { faultS: (t.heal - t.faultStart) / 1000, watchS: (t.end - t.heal) / 1000 },
    baseline: { known: baseline },
    known: streamStats(of('known').filter(during), t.heal),
    limitsOnly: streamStats(of('limitsOnly').filter(during), t.heal),
    unknown: streamStats(of('unknown').filter(during), t.heal),
    readyz: {
      polls: rzDuring.length,
      notReadyAfterMs: firstNot ? firstNot.end - t.faultStart : null,
      bodyDuringFault: firstNot?.body ?? null,
      maxLatencyDuringFaultMs: rzDuring.length ? Math.max(...rzDuring.map((p) => p.end - p.start)) : Number.NaN,
      readyAfterHealMs: firstReady ? firstReady.end - t.heal : null,
    },
    metrics: { polls: mx.length, ok: mx.filter((p) => p.status === 200).length, p50Ms: percentile(mxLat, 50), maxMs: mx.length ? Math.max(...mx.map((p) => p.end - p.start)) : Number.NaN },
    recovery: {
      allOk: recoveredAt(of('known'), t, (r) => r.status !== 200),
      fast: recoveredAt(of('known'), t, (r) => r.status !== 200 || r.end - r.start > fastMs),
      unknownOk: recoveredAt(of('unknown'), t, (r) => r.status !== 200),
      fastMs,
      spoolBefore,
      spoolPeak,
      spoolBack,
    },
  };
}

/**
 * The client's x-request-id of a ledger row: a request id the client chose is stored with a
 * `~<random hex>` suffix (so two clients reusing an id cannot collide); the part before the last '~'.
 */
export function clientRequestId(rowId: string): string {
  const i = rowId.lastIndexOf('~');
  return i === -1 ? rowId : rowId.slice(0, i);
}

/** Ledger completeness: every request the client saw answered 200 must have exactly one usage_events row. */
export function checkLedger(records: RequestRecord[], rows: { request_id: string; status: number }[]): LedgerCheck {
  const rowsOf = new Map<string, number>();
  for (const r of rows) rowsOf.set(clientRequestId(r.request_id), (rowsOf.get(clientRequestId(r.request_id)) ?? 0) + 1);
  const ok = records.filter((r) => r.status === 200);
  const missingIds = ok.filter((r) => !rowsOf.has(r.id)).map((r) => r.id);
  const duplicateIds = [...rowsOf.entries()].filter(([, n]) => n > 1).map(([id]) => id);
  const seen200 = new Set(ok.map((r) => r.id));
  const rowsByStatus: Record<string, number> = {};
  for (const r of rows) rowsByStatus[String(r.status)] = (rowsByStatus[String(r.status)] ?? 0) + 1;
  return {
    answered200: ok.length,
    withRow: ok.length - missingIds.length,
    missingIds,
    duplicateIds,
    rowsByStatus,
    rowsNotSeenAs200: rows.filter((r) => r.status === 200 && !seen200.has(clientRequestId(r.request_id))).length,
    noAnswer: records.filter((r) => r.status === 0).length,
  };
}

export function ledgerByPhase(results: FaultResult[], records: RequestRecord[], missing: Set<string>): void {
  results.forEach((res, i) => {
    const ok = records.filter((r) => r.phase === i && r.status === 200);
    const miss = ok.filter((r) => missing.has(r.id)).length;
    res.ledger = { answered200: ok.length, withRow: ok.length - miss, missing: miss };
  });
}

function statuses(s: StreamStats): string {
  const entries = Object.entries(s.statuses).sort((a, b) => b[1] - a[1]);
  if (entries.length === 0) return 'none sent';
  return entries.map(([k, n]) => `${k} ×${n}`).join(', ');
}

function recoveryText(v: number | 'never-failed' | 'not-recovered', afterHeal = false): string {
  if (v === 'never-failed') return afterHeal ? 'throughout' : 'never failed';
  if (v === 'not-recovered') return '**not within the watch**';
  return v < 50 ? 'at the heal' : `${fmtS(v)}${afterHeal ? ' after heal' : ''}`;
}

function spoolText(r: FaultResult['recovery']): string {
  if (r.spoolBack === null) return 'n/a (no /metrics samples)';
  if (r.spoolBack === 'not-grown') return `did not grow (≤ ${r.spoolBefore})`;
  const peak = `peak ${r.spoolPeak}`;
  if (r.spoolBack === 'not-back') return `**not back** (${peak}, before ${r.spoolBefore})`;
  return `${fmtS(r.spoolBack)} (${peak})`;
}

function readyzText(r: FaultResult['readyz']): string {
  const down = r.notReadyAfterMs === null ? '**stayed 200**' : `503 after ${fmtS(r.notReadyAfterMs)}`;
  const up = r.readyAfterHealMs === null ? '**no 200 in the watch**' : `200 ${fmtS(r.readyAfterHealMs)} after heal`;
  return `${down}; ${up}`;
}

const ms = (v: number) => (Number.isFinite(v) ? (v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${v.toFixed(v < 10 ? 1 : 0)} ms`) : 'n/a');
const lat3 = (l: Latency) => (l.n ? `${ms(l.p50)} / ${ms(l.p99)} / ${ms(l.max)}` : 'n/a');
const lat2 = (l: Latency) => (l.n ? `${ms(l.p50)} / ${ms(l.max)}` : 'n/a');

function faultRows(results: FaultResult[]): string[][] {
  return results.map((r) => [
    `${r.fault}${r.notes.length ? ' (!)' : ''}`,
    `${r.known.n} sent: ${statuses(r.known)}`,
    lat3(r.known.latencyMs),
    `${statuses(r.limitsOnly)}; ${lat2(r.limitsOnly.latencyMs)}`,
    `${statuses(r.unknown)}; ${lat2(r.unknown.latencyMs)}; all 200 ${recoveryText(r.recovery.unknownOk, true)}`,
    readyzText(r.readyz),
    r.metrics.polls ? `${r.metrics.ok}/${r.metrics.polls} answered; ${ms(r.metrics.p50Ms)} / ${ms(r.metrics.maxMs)}` : 'n/a',
    `${recoveryText(r.recovery.allOk)} / ${recoveryText(r.recovery.fast)}`,
    spoolText(r.recovery),
    r.ledger ? (r.ledger.missing === 0 ? `${r.ledger.withRow}/${r.ledger.answered200}` : `**${r.ledger.missing} missing** of ${r.ledger.answered200}`) : 'n/a',
  ]);
}

const HEADER = [
  'fault',
  'known key (limits + budgets): requests started during the fault, statuses',
  'its latency p50 / p99 / max',
  'known key, limits only: statuses; p50 / max',
  'unknown key: statuses; p50 / max; when all its answers are 200 again',
  '/readyz',
  '/metrics during the fault: p50 / max',
  'known key all 200 again / also fast again, after heal',
  'spool back to its pre-fault level after heal',
  '200s with a ledger row (whole phase)',
];

/** "What it shows", from the numbers. */
function findings(results: FaultResult[], ledger: LedgerCheck, s: OutageSettings): string[] {
  const out: string[] = [];
  const hang = (r: FaultResult) => Math.max(r.known.latencyMs.max, r.limitsOnly.latencyMs.max || 0, r.unknown.latencyMs.max || 0);
  const pg = results.filter((r) => r.service === 'postgres');
  const redis = results.filter((r) => r.service === 'redis');

  if (pg.length) {
    const served = pg.filter((r) => (r.known.statuses['200'] ?? 0) === r.known.n && r.known.n > 0);
    const notServed = pg.filter((r) => !served.includes(r));
    out.push(
      `PostgreSQL faults, known key: ${served.length ? `answered 200 throughout ${served.map((r) => `${r.fault} (max ${ms(r.known.latencyMs.max)})`).join(', ')}` : 'never answered 200 throughout a fault'}${
        notServed.length ? `; not in ${notServed.map((r) => `${r.fault} (${statuses(r.known)}; max ${ms(r.known.latencyMs.max)})`).join(', ')}` : ''
      }.`,
    );
    const unk = pg.map((r) => `${r.fault}: ${statuses(r.unknown)}, p50 ${ms(r.unknown.latencyMs.p50)}, max ${ms(r.unknown.latencyMs.max)}`);
    const worst = Math.max(...pg.map((r) => r.unknown.latencyMs.max));
    const q = s.defaults.postgresQueryTimeoutMs;
    out.push(`PostgreSQL faults, a key the gateway had not seen: ${unk.join('; ')}${worst <= q * 1.2 ? `: bounded by the ${q} ms postgresQueryTimeoutMs` : ''}.`);
  }
  if (redis.length) {
    const deadline = s.defaults.redisCommandTimeoutMs;
    const per = redis.map((r) => {
      const k = r.known.latencyMs;
      const waits = k.p50 > deadline * 0.8 ? ` ≈ ${(k.p50 / deadline).toFixed(1)} × the ${deadline} ms Redis command deadline${k.p99 < k.p50 * 1.2 ? ', the same for every request of the fault' : ''}` : '';
      const late = r.known.ok200AfterHeal ? ` (its ${r.known.ok200AfterHeal} 200s were answered after the heal)` : '';
      return `${r.fault}: the key with budgets (they fail closed) got ${statuses(r.known)}${late}, p50 ${ms(k.p50)}${waits}; the limits-only key (rate limits fail open) got ${statuses(r.limitsOnly)}, p50 ${ms(r.limitsOnly.latencyMs.p50)}, max ${ms(r.limitsOnly.latencyMs.max)}`;
    });
    out.push(`Redis faults: ${per.join('; ')}.`);
  }
  const hanging = results.filter((r) => hang(r) >= 2_000);
  out.push(
    hanging.length
      ? `Waits longer than 2 s (a request hanging on a dependency): ${hanging.map((r) => `${r.fault} (longest ${ms(hang(r))})`).join(', ')}.`
      : `No request waited 2 s or more in any fault (longest: ${ms(Math.max(...results.map(hang)))}): every wait on a dependency was bounded.`,
  );
  const rzMissed = results.filter((r) => r.readyz.notReadyAfterMs === null);
  const rzSlowest = Math.max(...results.map((r) => r.readyz.notReadyAfterMs ?? 0));
  out.push(
    `/readyz: ${rzMissed.length ? `stayed 200 during ${rzMissed.map((r) => r.fault).join(', ')}; went 503 in the others` : 'went 503 in every fault,'} within ${fmtS(rzSlowest)} of its start, and answered 200 again within ${fmtS(
      Math.max(...results.map((r) => r.readyz.readyAfterHealMs ?? Number.POSITIVE_INFINITY)),
    )} of the heal${results.some((r) => r.readyz.readyAfterHealMs === null) ? ' (not at all in some: see the table)' : ''}; its slowest answer during a fault took ${ms(Math.max(...results.map((r) => r.readyz.maxLatencyDuringFaultMs)))}.`,
  );
  const mxBad = results.filter((r) => r.metrics.ok < r.metrics.polls);
  out.push(
    mxBad.length
      ? `/metrics failed to answer during ${mxBad.map((r) => `${r.fault} (${r.metrics.polls - r.metrics.ok} of ${r.metrics.polls})`).join(', ')}.`
      : `/metrics answered every scrape during every fault (slowest ${ms(Math.max(...results.map((r) => r.metrics.maxMs)))}).`,
  );
  const rec = results.map((r) => r.recovery.allOk).filter((v): v is number => typeof v === 'number');
  const notRec = results.filter((r) => r.recovery.allOk === 'not-recovered');
  out.push(
    `Recovery: ${notRec.length ? `the known key was still failing at the end of the ${s.watchS} s watch after ${notRec.map((r) => r.fault).join(', ')}; ` : ''}${
      rec.length ? `every known-key answer was 200 again at most ${fmtS(Math.max(...rec))} after the heal` : 'the known key never failed'
    }${(() => {
      const u = results.map((r) => r.recovery.unknownOk).filter((v): v is number => typeof v === 'number');
      const never = results.filter((r) => r.recovery.unknownOk === 'not-recovered').map((r) => r.fault);
      return `; a key first seen during the fault was answered 200 again at most ${u.length ? fmtS(Math.max(...u)) : 'n/a'} after the heal${never.length ? ` (**not within the watch after ${never.join(', ')}**)` : ''}`;
    })()}; the ledger spool was back to its pre-fault level within ${(() => {
      const v = results.map((r) => r.recovery.spoolBack).filter((x): x is number => typeof x === 'number');
      return v.length ? fmtS(Math.max(...v)) : 'n/a (it never grew)';
    })()}${results.some((r) => r.recovery.spoolBack === 'not-back') ? ' where it drained (not at all after some: see the table)' : ''}.`,
  );
  out.push(
    ledger.error
      ? `Ledger: could not be checked (${ledger.error}).`
      : ledger.missingIds.length === 0
        ? `Ledger: all ${ledger.answered200} requests answered 200 have their usage_events row${ledger.duplicateIds.length ? `; **${ledger.duplicateIds.length} requests have more than one row**` : ', none has two'}${ledger.rowsNotSeenAs200 ? `; ${ledger.rowsNotSeenAs200} more 200 rows are for requests the client did not see answered` : ''}.`
        : `Ledger: **${ledger.missingIds.length} of ${ledger.answered200} requests answered 200 have no usage_events row** (unbilled)${ledger.duplicateIds.length ? `; **${ledger.duplicateIds.length} have more than one**` : ''}.`,
  );
  return out;
}

export function buildReport(input: {
  results: FaultResult[];
  ledger: LedgerCheck;
  settings: OutageSettings;
  date: Date;
  machine: MachineInfo;
  gatewayExit: string | null;
  logFile: string;
  logSummary: LogSummary;
}): ReportDoc {
  const { results, ledger, settings: s, date, machine } = input;
  const rows = faultRows(results);
  const notes = results.flatMap((r) => r.notes.map((n) => `${r.fault}: ${n}`));
  const d = s.defaults;
  const method = [
    `One \`tollgate start\` (dist/, distributed mode, defaults otherwise: \`storage.postgresQueryTimeoutMs\` ${d.postgresQueryTimeoutMs}, \`postgresStatementTimeoutMs\` ${d.postgresStatementTimeoutMs}, \`postgresConnectTimeoutMs\` ${d.postgresConnectTimeoutMs}, \`redisCommandTimeoutMs\` ${d.redisCommandTimeoutMs}, \`auth.cacheTtlMs\` ${d.authCacheTtlMs}, \`auth.maxStaleMs\` ${d.authMaxStaleMs}; log at info to a file) in front of \`tollgate sim --latency 0 --tps 0\`, reaching PostgreSQL and Redis through a loopback TCP proxy each (test/helpers/tcp-proxy.ts), in a schema and key prefix of its own, removed afterwards. The real servers are never touched: faults are the proxies' modes (refuse, pause, drop), except pg-lock, a transaction on a direct connection holding \`LOCK TABLE api_keys IN ACCESS EXCLUSIVE MODE\`. Tiers: \`standard\` with rate limits and daily budgets (very high: nothing refused), \`premium\` with rate limits only, so that Redis is on the request path (with the default tiers it is not).`,
    `Load, evenly paced and open loop (no client-side queue; client timeout ${s.clientTimeoutMs / 1000} s, so a hang shows as latency): ${s.knownRate} req/s of a known key (tier standard, used before every fault) and ${s.limitsOnlyRate} req/s of a known key of tier premium, JSON chat completions (sim-small, max_tokens 16), all through the run; from each fault's start to the end of its watch, ${s.unknownRate} req/s of a key created before the gateway started and never used before (a new one per fault). Each fault: ${s.leadS} s of healthy traffic, the fault for ${s.faultS} s, the heal, ${s.watchS} s of watch; one after another on the same gateway. /readyz polled every ${s.readyzEveryMs} ms, /metrics every ${s.metricsEveryMs} ms (one at a time each).`,
    `"During the fault" = requests started between the fault and the heal; latency from sending to the end of the answer, any status. "All 200 again": from when (after the heal) every known-key answer is a 200 — the end of the last non-200 answer; "fast again": also within max(250 ms, 5 × the pre-fault p99). Spool: \`tollgate_ledger_spool_events\` back to its highest level in the ${s.leadS} s before the fault. Ledger: after the run (spool drained, gateway stopped), each request the client saw answered 200 is looked up by its x-request-id in \`usage_events\` (stored as \`<id>~<random>\`): exactly one row each is expected.`,
  ].join(' ');
  const totals = `Ledger totals: ${ledger.answered200} answered 200, ${ledger.withRow} with a row${ledger.missingIds.length ? ` (missing e.g. ${ledger.missingIds.slice(0, 3).join(', ')})` : ''}; rows by status: ${
    Object.entries(ledger.rowsByStatus)
      .map(([k, n]) => `${k}: ${n}`)
      .join(', ') || 'none'
  }; ${ledger.noAnswer} requests got no answer. Gateway log: ${input.logSummary.lines} lines (${input.logSummary.requestWarn} of them non-2xx request lines); besides those, ${input.logSummary.warn} warn and ${input.logSummary.error} error lines${
    input.logSummary.top.length ? ` (most frequent: ${input.logSummary.top.map((t) => `"${t.msg}" ×${t.n}`).join(', ')})` : ''
  }.`;
  return {
    title: 'Outages: latency during each dependency fault, and time to recover (issue 15)',
    context: [`Run ${date.toISOString()} on ${describeMachine(machine)}. Raw numbers: bench/results/outages-*.json; gateway log of the run: ${input.logFile} (git-ignored).`],
    blocks: [
      text(method),
      table(HEADER, rows),
      text('**What it shows**'),
      list([...findings(results, ledger, s), ...(input.gatewayExit ? [`**The gateway exited during the run: ${input.gatewayExit}.**`] : [])]),
      ...(notes.length ? [text('Notes (!):'), list(notes)] : []),
      text(totals),
    ],
  };
}
