/**
 * The metering scenario's report: what metering, rate limits and budgets add over the core path
 * (per target, against tollgate-core), verdicts, checks (all answers 2xx, ledger events written,
 * counters in Redis, clean-up), caveats, optional CPU profiles, and the report document
 * (lib/report.ts).
 */
import { difference } from '../lib/compare.js';
import { profileBlocks, type ProfileEntry, type ProfileSummary } from '../lib/cpuprofile.js';
import { closing, column, heading, list, methodDoc, section, table, tableOf, text, type Block, type Table } from '../lib/report.js';
import { addedColumns, otherLoadCaveat, rssColumns, runColumns as col, runTable, shortfallCaveats, upstreamCaveat } from '../lib/run-report.js';
import type { BenchSettings, BuiltReport, Verdict } from '../lib/scenario.js';
import { redact } from '../lib/stores.js';
import { fmt, fmtDelta } from '../lib/table.js';
import type { Mode } from '../lib/tollgate.js';
import type { MeasuredRun } from '../lib/turns.js';

/** Added p50 over tollgate-core at the fixed rate. */
export const TARGETS = { embeddedAddedP50Ms: 0.3, distributedAddedP50Ms: 1 } as const;

export type TargetName = 'tollgate-core' | 'tollgate-embedded-limits' | 'tollgate-distributed-limits';
export const BASELINE: TargetName = 'tollgate-core';

/** "Very high": far above what the bench can use, so nothing is ever refused. */
export const VERY_HIGH_LIMIT = { tokensPerMinute: 1_000_000_000, requestsPerMinute: 100_000_000 } as const;
/** Pico-dollar counters must stay below 2^53 (~9,007 USD): 1,000 USD a day is ~5 orders of magnitude above a run's spend. */
export const VERY_HIGH_BUDGET = { dailyUsd: 1_000 } as const;
/** The tiers of the limited targets: 6 buckets (requests and tokens, per tenant, key and user) and 2 budgets per request. */
export const LIMITED_TIERS = {
  standard: {
    limits: { tenant: { ...VERY_HIGH_LIMIT }, key: { ...VERY_HIGH_LIMIT }, user: { ...VERY_HIGH_LIMIT } },
    budgets: { tenant: { ...VERY_HIGH_BUDGET }, key: { ...VERY_HIGH_BUDGET } },
  },
} as const;

export interface MeteringSettings {
  rate: number;
  rateConnections: number;
  leadInS: number;
  warmupConnections: number;
  modes: Mode[];
  /** The `user` field every request carries. */
  user: string;
  profile: boolean;
  distributed: boolean;
  redisUrl: string;
  postgresUrl: string;
  postgresSchema: string;
  redisPrefix: string;
}

export interface TargetInfo {
  name: TargetName;
  storage: 'embedded' | 'distributed';
  limited: boolean;
  description: string;
  /** x-ratelimit-limit-requests on the pre-flight answer (null: none; expected on limited targets only). */
  rateLimitHeader: string | null;
  idleRss: { rssMB: number; peakRssMB: number };
  rssAfter?: { rssMB: number; peakRssMB: number };
  /** Requests written to the gateway in all (pre-flight, warm-up, measured, lead-ins). */
  requestsSent: number;
  /** Usage events in its ledger after it stopped (its last flush is on close). */
  ledgerEvents?: number | undefined;
  profileDir?: string;
}

/** One target's fixed-rate run (simulator calls per answered request: expect 1). */
export interface RunRecord extends MeasuredRun {
  mode: Mode;
  target: TargetName;
}

export interface StoreChecks {
  /** Counter keys under the run's Redis prefix half-way through the distributed target's warm-up, by kind. */
  redisKeys?: { total: number; rateBuckets: number; budgets: number; other: number };
  schemaDropped?: boolean;
  redisKeysDeleted?: number;
  /** Anything that went wrong while checking or cleaning up. */
  errors: string[];
}

export interface Added {
  target: TargetName;
  vs: TargetName;
  p50: number;
  p99: number;
  perRound: { p50: number; p99: number };
  cpuUsPerReq: number;
  issues: string;
}

export interface Derived {
  added: Record<string, Added[]>;
  /** 429 and 402 answers over every measured run: a refusal means a "very high" limit was not. */
  refusals: number;
}

function find(runs: RunRecord[], mode: Mode, target: TargetName): RunRecord | undefined {
  return runs.find((r) => r.mode === mode && r.target === target);
}

function added(runs: RunRecord[], mode: Mode, target: TargetName, vs: TargetName): Added | undefined {
  const a = find(runs, mode, target);
  const b = find(runs, mode, vs);
  if (!a || !b) return undefined;
  const { p50, p99, perRound, cpuUsPerReq, issues } = difference({ name: target, ...a }, { name: vs, ...b });
  return { target, vs, p50, p99, perRound, cpuUsPerReq, issues };
}

function derive(runs: RunRecord[], modes: Mode[]): Derived {
  const out: Derived = { added: {}, refusals: 0 };
  for (const mode of modes) {
    out.added[mode] = [
      added(runs, mode, 'tollgate-embedded-limits', BASELINE),
      added(runs, mode, 'tollgate-distributed-limits', BASELINE),
      added(runs, mode, 'tollgate-distributed-limits', 'tollgate-embedded-limits'),
    ].filter((a): a is Added => a !== undefined);
  }
  for (const r of runs) out.refusals += (r.load.statusCodes['429'] ?? 0) + (r.load.statusCodes['402'] ?? 0);
  return out;
}

function verdicts(derived: Derived, modes: Mode[], rate: number, distributed: boolean): Verdict[] {
  const out: Verdict[] = [];
  const R = rate.toLocaleString('en-US');
  for (const mode of modes) {
    const goals: Array<[TargetName, number]> = [['tollgate-embedded-limits', TARGETS.embeddedAddedP50Ms]];
    if (distributed) goals.push(['tollgate-distributed-limits', TARGETS.distributedAddedP50Ms]);
    for (const [target, limit] of goals) {
      const a = derived.added[mode]?.find((x) => x.target === target && x.vs === BASELINE);
      const name = `${mode}: ${target} added p50 over ${BASELINE} at ${R} req/s`;
      if (!a) {
        out.push({ name, target: `<= ${limit} ms`, actual: 'n/a', pass: false, note: 'no run' });
        continue;
      }
      const pass = Number.isFinite(a.p50) && a.p50 <= limit;
      const roundPass = Number.isFinite(a.perRound.p50) && a.perRound.p50 <= limit;
      const notes = [a.issues, pass !== roundPass ? `the per-round median (${fmt(a.perRound.p50)} ms) ${roundPass ? 'meets' : 'misses'} it: within noise` : ''].filter(Boolean);
      out.push({
        name,
        target: `<= ${limit} ms`,
        actual: `${fmt(a.p50)} ms (per-round median ${fmt(a.perRound.p50)} ms)`,
        pass: !a.issues && pass,
        ...(notes.length ? { note: notes.join('; ') } : {}),
      });
    }
  }
  return out;
}

function notes(runs: RunRecord[], targets: TargetInfo[], derived: Derived, checks: StoreChecks, m: MeteringSettings): string[] {
  const effect = 'latencies, p99 above all, are inflated by that much contention; the per-round medians and the CPU µs/req resist it best.';
  const out: (string | undefined)[] = [otherLoadCaveat(runs.map((r) => r.cpu.foreignCores), effect)];
  if (derived.refusals > 0) {
    out.push(`${derived.refusals} requests were refused (429/402): the "very high" limits or budgets were not high enough, and the verdicts are void.`);
  }
  out.push(...shortfallCaveats(runs.map((r) => ({ label: `${r.target} (${r.mode})`, load: r.load })), m.rate, true));
  for (const r of runs) out.push(upstreamCaveat(`${r.target} (${r.mode})`, r.upstream));
  for (const t of targets) {
    if (t.limited && t.rateLimitHeader === null) out.push(`${t.name} sent no x-ratelimit-* headers: its limits did not apply, so it measured the core path.`);
    if (!t.limited && t.rateLimitHeader !== null) out.push(`${t.name} sent x-ratelimit-* headers: it is not the unlimited baseline it should be.`);
    if (t.ledgerEvents !== undefined && t.ledgerEvents < t.requestsSent * 0.99) {
      out.push(`${t.name}'s ledger holds ${t.ledgerEvents} usage events for ${t.requestsSent} requests sent: events missing?`);
    }
  }
  if (m.distributed && checks.redisKeys && (checks.redisKeys.rateBuckets < 6 || checks.redisKeys.budgets < 2)) {
    out.push(`Redis held ${checks.redisKeys.rateBuckets} rate-limit buckets and ${checks.redisKeys.budgets} budget counters under the run's prefix (expected 6 and 2): the distributed target did not use Redis as configured.`);
  }
  out.push(...checks.errors);
  return out.filter((n): n is string => n !== undefined);
}

/** µs per request of Tollgate's own functions (callees included), each limited target minus tollgate-core. */
export interface ProfileDiffRow {
  name: string;
  usPerReq: Partial<Record<TargetName, number>>;
}

export interface ProfileReport {
  summaries: Partial<Record<TargetName, ProfileSummary>>;
  /** Full inclusive lists (not only the top), for the difference table. */
  inclusive: Partial<Record<TargetName, ProfileEntry[]>>;
  byArea: Partial<Record<TargetName, ProfileEntry[]>>;
}

function perReq(list: ProfileEntry[] | undefined, requests: number): Map<string, number> {
  return new Map((list ?? []).map((e) => [e.name, (e.ms * 1000) / Math.max(1, requests)]));
}

/** The functions and areas whose time per request grew most over tollgate-core. */
function profileDiff(p: ProfileReport, targets: TargetInfo[], top = 20): { areas: Table; functions: Table } {
  const names = targets.map((t) => t.name);
  const others = names.filter((n) => n !== BASELINE);
  const sent = Object.fromEntries(targets.map((t) => [t.name, t.requestsSent])) as Record<TargetName, number>;
  const columns = ['where', ...names.map((n) => `${n} µs/req`), ...others.map((n) => `Δ ${n.replace('tollgate-', '')}`)];
  const rows = (lists: Partial<Record<TargetName, ProfileEntry[]>>): string[][] => {
    const maps = Object.fromEntries(names.map((n) => [n, perReq(lists[n], sent[n])])) as Record<TargetName, Map<string, number>>;
    const base = maps[BASELINE];
    const all = new Set(names.flatMap((n) => [...(maps[n]?.keys() ?? [])]));
    const growth = (k: string) => Math.max(...others.map((n) => (maps[n]?.get(k) ?? 0) - (base?.get(k) ?? 0)));
    return [...all]
      .sort((a, b) => growth(b) - growth(a))
      .slice(0, top)
      .map((k) => [k, ...names.map((n) => fmt(maps[n]?.get(k) ?? 0, 1)), ...others.map((n) => fmtDelta((maps[n]?.get(k) ?? 0) - (base?.get(k) ?? 0), 1))]);
  };
  return { areas: { columns, rows: rows(p.byArea) }, functions: { columns, rows: rows(p.inclusive) } };
}

function profileSection(p: ProfileReport, targets: TargetInfo[]): Block[] {
  const diff = profileDiff(p, targets);
  return [
    ...section(
      "Where the gateways' CPU goes (--cpu-prof over each whole run, warm-up included)",
      text(
        'µs of CPU per request sent, by area (self time) and by Tollgate function (callees included), sorted by how much more a limited target spends than tollgate-core. A profile covers the process from start to exit: one-off work (start-up, the tokenizer load on the first limited request, ~0.4 s) is spread over the requests, so short runs overstate it. Only synchronous work is inside a function: time waiting for Redis is not.',
      ),
      table(diff.areas.columns, diff.areas.rows),
      table(diff.functions.columns, diff.functions.rows),
    ),
    ...targets.flatMap((t) => {
      const summary = p.summaries[t.name];
      return summary ? [heading(t.name, 4), ...profileBlocks(summary)] : [];
    }),
  ];
}

export interface ReportInput {
  runs: RunRecord[];
  targets: TargetInfo[];
  checks: StoreChecks;
  metering: MeteringSettings;
  settings: BenchSettings;
  rate: { count: number; sliceS: number };
  maxTokens: number;
  profile?: ProfileReport | undefined;
}

export function buildReport(input: ReportInput): BuiltReport<Derived> {
  const { runs, targets, checks, metering: m, settings: s, rate } = input;
  const derived = derive(runs, m.modes);
  const vs = verdicts(derived, m.modes, m.rate, m.distributed);
  const caveats = notes(runs, targets, derived, checks, m);
  const R = m.rate.toLocaleString('en-US');

  const rateTable = runTable(runs, [col.mode, col.target], [col.ttfb, col.cpu('gateway'), column('CPU µs/req (Redis+PG)', (r) => fmt(r.cpu.relatedUsPerReq, 0)), col.simCpu, col.upstream('upstream calls/req')]);
  const addedTable = tableOf(
    m.modes.flatMap((mode) => (derived.added[mode] ?? []).map((a) => ({ mode, ...a }))),
    [col.mode, col.target, column('vs', (a) => a.vs), addedColumns.p50, addedColumns.p99, addedColumns.roundP50, addedColumns.roundP99, addedColumns.cpu],
  );
  const targetTable = tableOf(targets, [
    column('target', (t) => t.name),
    column('storage', (t) => t.storage),
    column('limits and budgets', (t) => (t.limited ? '6 buckets, 2 budgets' : 'none')),
    column('x-ratelimit-limit-requests', (t) => t.rateLimitHeader ?? '—'),
    column('requests sent', (t) => String(t.requestsSent)),
    column('ledger events', (t) => (t.ledgerEvents === undefined ? 'n/a' : String(t.ledgerEvents))),
    ...rssColumns,
  ]);

  const k = checks.redisKeys;
  const checkLines = [
    `Answers: ${derived.refusals === 0 ? 'no 429 or 402 in any measured run (the limits and budgets never refused)' : `**${derived.refusals} refusals (429/402)**`}; other errors per run in the "errors" column.`,
    `Limits applied: ${targets.map((t) => `${t.name} ${t.rateLimitHeader === null ? 'sent no x-ratelimit-* headers' : `sent x-ratelimit-limit-requests: ${t.rateLimitHeader}`}`).join('; ')}.`,
    `Ledger: ${targets.map((t) => `${t.name} ${t.ledgerEvents === undefined ? 'n/a' : `${t.ledgerEvents} events`} for ${t.requestsSent} requests sent`).join('; ')} (counted after each gateway stopped; cut-off requests are recorded too).`,
    ...(m.distributed
      ? [
          `Redis (${redact(m.redisUrl)}), prefix \`${m.redisPrefix}\`: ${k ? `${k.total} keys under load (${k.rateBuckets} rate-limit buckets, ${k.budgets} budget counters, ${k.other} other)` : 'not inspected'}; ${checks.redisKeysDeleted === undefined ? '**not deleted**' : `${checks.redisKeysDeleted} deleted after the runs`}. PostgreSQL (${redact(m.postgresUrl)}), schema \`${m.postgresSchema}\`: ${checks.schemaDropped === undefined ? '**not dropped**' : checks.schemaDropped ? 'dropped' : 'was not there'}.`,
        ]
      : []),
  ];

  const distributedLine = m.distributed
    ? `\`tollgate-distributed-limits\` the same tiers with \`storage: {kind: distributed}\` (Redis and PostgreSQL on loopback, a schema and key prefix of its own, dropped after the run).`
    : 'The distributed target was skipped (BENCH_METERING_DISTRIBUTED=0).';
  const setup = [
    `Targets, all \`tollgate start\` in front of the same \`tollgate sim --latency 0 --tps 0\`, one openai-compatible provider, API-key auth, \`logging.level: info\` (stdout to /dev/null), metrics on${m.profile ? ', **each run under --cpu-prof (numbers are slower than normal)**' : ''}: \`tollgate-core\` embedded, default tiers (no limits, no budgets) — **it still writes the ledger event of every request (metering is always on), so the added figures below are the cost of rate limits and budgets (plus, for the distributed target, of Redis and PostgreSQL storage) on top of a metered core path**; \`tollgate-embedded-limits\` embedded, tier \`standard\` with \`limits\` for tenant, key and user (${VERY_HIGH_LIMIT.tokensPerMinute.toLocaleString('en-US')} tokens and ${VERY_HIGH_LIMIT.requestsPerMinute.toLocaleString('en-US')} requests per minute each: 6 buckets taken per request, the 3 token buckets corrected after it when the usage differs from the estimate) and \`budgets\` for tenant and key (${VERY_HIGH_BUDGET.dailyUsd.toLocaleString('en-US')} USD a day each: 2 budgets reserved and settled per request); ${distributedLine}`,
    `Request: \`POST /v1/chat/completions\`, model sim-small, one short user message, \`max_tokens: ${input.maxTokens}\`, \`user: "${m.user}"\`; \`stream: true\` for the stream rows. Same bytes to every target (each with its own API key).`,
    `Fixed rate: evenly paced, open loop, ${R} req/s, up to ${m.rateConnections} connections, ${m.leadInS} s unmeasured lead-in; ${s.seconds} s per target and mode, as ${rate.count} rounds of ${fmt(rate.sliceS)} s. In each round the targets take turns, never at once, starting with a different one each round. Warm-up: ${s.warmupSeconds} s per target first (autocannon, ${m.warmupConnections} connections, ${m.modes.join(' and ')}).`,
    `Latency: client side, from writing the request to the last byte of the answer, µs precision, 2xx only. Added: the target's percentile minus the baseline's over all samples (the verdicts use these); per-round median: the median over rounds of the same difference slice by slice, which resists bursts of outside load.`,
    `CPU µs/req: CPU time (user + system, /proc) of the gateway process per request sent. Redis+PG: CPU of every \`redis-server\` and \`postgres\` process on the machine meanwhile, per request: an upper bound (they may serve others), and the cost the distributed target moves out of the gateway. Other load: CPU of everything else, in cores (2 cores, shared: noise).`,
  ];

  const doc = methodDoc('Metering, rate limits and budgets (`npm run bench -- metering`)', s, setup, [
    ...section(`Fixed rate: ${R} req/s`, rateTable),
    ...section(`Added latency at ${R} req/s`, addedTable),
    ...closing({ verdicts: vs, checks: [list(checkLines), targetTable], caveats }),
    ...(input.profile ? profileSection(input.profile, targets) : []),
  ]);
  return { doc, verdicts: vs, derived, caveats };
}
