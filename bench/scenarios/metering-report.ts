/**
 * The metering scenario's report: what metering, rate limits and budgets add over the core path
 * (per target, against tollgate-core), verdicts, checks (all answers 2xx, ledger events written,
 * counters in Redis, clean-up), caveats, optional CPU profiles, and the tables for the console
 * and bench/RESULTS.md.
 */
import { issuesOf, pairedMedian } from '../lib/compare.js';
import { formatProfile, type ProfileEntry, type ProfileSummary } from '../lib/cpuprofile.js';
import { problems, rateShortfall, type LoadResult } from '../lib/load.js';
import { describeMachine, type MachineInfo } from '../lib/results.js';
import type { BenchSettings, Verdict } from '../lib/scenario.js';
import { redact } from '../lib/stores.js';
import { fmt, fmtDelta, markdownTable, textTable } from '../lib/table.js';
import type { Mode } from '../lib/tollgate.js';
import type { TurnCpu } from '../lib/turns.js';

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

export interface RunRecord {
  mode: Mode;
  target: TargetName;
  load: LoadResult;
  cpu: TurnCpu;
  /** Simulator requests per answered request (expect 1). */
  upstreamCallsPerRequest: number;
  upstream: { calls: number; sent: number; answered: number };
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
  return {
    target,
    vs,
    p50: a.load.latencyMs.p50 - b.load.latencyMs.p50,
    p99: a.load.latencyMs.p99 - b.load.latencyMs.p99,
    perRound: { p50: pairedMedian(a.load, b.load, 'p50'), p99: pairedMedian(a.load, b.load, 'p99') },
    cpuUsPerReq: a.cpu.targetUsPerReq - b.cpu.targetUsPerReq,
    issues: issuesOf({ [target]: a.load, [vs]: b.load }),
  };
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
  const out: string[] = [];
  const noisiest = runs.reduce((x, r) => Math.max(x, r.cpu.foreignCores), 0);
  if (noisiest > 0.25) {
    out.push(
      `Other processes used up to ${fmt(noisiest)} of the 2 cores during the runs (column "other load"): latencies, p99 above all, are inflated by that much contention; the per-round medians and the CPU µs/req resist it best.`,
    );
  }
  if (derived.refusals > 0) {
    out.push(`${derived.refusals} requests were refused (429/402): the "very high" limits or budgets were not high enough, and the verdicts are void.`);
  }
  for (const r of runs.filter((x) => rateShortfall(x.load))) {
    out.push(`${r.target} (${r.mode}) could not sustain ${m.rate} req/s here (${fmt(r.load.rps, 0)} req/s): its latency at that rate is time spent queueing, not per-request overhead.`);
  }
  for (const r of runs) {
    const u = r.upstream;
    if (u.calls > u.sent * 1.01 + 1) out.push(`${r.target} (${r.mode}) made ${u.calls} upstream calls for ${u.sent} requests: retries?`);
    else if (u.calls < u.answered * 0.99) out.push(`${r.target} (${r.mode}) answered ${u.answered} requests with ${u.calls} upstream calls: cache hits?`);
  }
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
  for (const e of checks.errors) out.push(e);
  return out;
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
function profileDiff(p: ProfileReport, targets: TargetInfo[], top = 20): { header: string[]; functions: string[][]; areas: string[][] } {
  const names = targets.map((t) => t.name);
  const sent = Object.fromEntries(targets.map((t) => [t.name, t.requestsSent])) as Record<TargetName, number>;
  const rows = (lists: Partial<Record<TargetName, ProfileEntry[]>>): string[][] => {
    const maps = Object.fromEntries(names.map((n) => [n, perReq(lists[n], sent[n])])) as Record<TargetName, Map<string, number>>;
    const base = maps[BASELINE];
    const all = new Set(names.flatMap((n) => [...(maps[n]?.keys() ?? [])]));
    const growth = (k: string) => Math.max(...names.filter((n) => n !== BASELINE).map((n) => (maps[n]?.get(k) ?? 0) - (base?.get(k) ?? 0)));
    return [...all]
      .sort((a, b) => growth(b) - growth(a))
      .slice(0, top)
      .map((k) => [k, ...names.map((n) => fmt(maps[n]?.get(k) ?? 0, 1)), ...names.filter((n) => n !== BASELINE).map((n) => fmtDelta((maps[n]?.get(k) ?? 0) - (base?.get(k) ?? 0), 1))]);
  };
  return {
    header: ['where', ...names.map((n) => `${n} µs/req`), ...names.filter((n) => n !== BASELINE).map((n) => `Δ ${n.replace('tollgate-', '')}`)],
    functions: rows(p.inclusive),
    areas: rows(p.byArea),
  };
}

export interface ReportInput {
  runs: RunRecord[];
  targets: TargetInfo[];
  checks: StoreChecks;
  metering: MeteringSettings;
  settings: BenchSettings;
  rate: { count: number; sliceS: number };
  date: Date;
  machine: MachineInfo;
  maxTokens: number;
  profile?: ProfileReport | undefined;
}

export interface MeteringReport {
  summary: string;
  markdown: string;
  verdicts: Verdict[];
  derived: Derived;
  caveats: string[];
}

export function buildReport(input: ReportInput): MeteringReport {
  const { runs, targets, checks, metering: m, settings: s, rate, date, machine } = input;
  const derived = derive(runs, m.modes);
  const vs = verdicts(derived, m.modes, m.rate, m.distributed);
  const caveats = notes(runs, targets, derived, checks, m);
  const R = m.rate.toLocaleString('en-US');

  const rateTable = {
    header: ['mode', 'target', 'req/s', 'p50 ms', 'p90 ms', 'p99 ms', 'p99.9 ms', 'max ms', 'TTFB p50 ms', 'CPU µs/req (gateway)', 'CPU µs/req (Redis+PG)', 'CPU µs/req (sim)', 'upstream calls/req', 'other load (cores)', 'errors'],
    rows: runs.map((r) => [
      r.mode,
      r.target,
      fmt(r.load.rps, 0),
      fmt(r.load.latencyMs.p50),
      fmt(r.load.latencyMs.p90),
      fmt(r.load.latencyMs.p99),
      fmt(r.load.latencyMs.p999),
      fmt(r.load.latencyMs.max),
      fmt(r.load.ttfbMs?.p50),
      fmt(r.cpu.targetUsPerReq, 0),
      fmt(r.cpu.relatedUsPerReq, 0),
      fmt(r.cpu.simUsPerReq, 0),
      fmt(r.upstreamCallsPerRequest),
      fmt(r.cpu.foreignCores),
      problems(r.load) || 'ok',
    ]),
  };
  const ms = (v: number) => `${fmtDelta(v)} ms`;
  const addedTable = {
    header: ['mode', 'target', 'vs', 'added p50', 'added p99', 'per-round median: added p50', 'added p99', 'added CPU µs/req (gateway)'],
    rows: m.modes.flatMap((mode) =>
      (derived.added[mode] ?? []).map((a) => [mode, a.target, a.vs, ms(a.p50), ms(a.p99), ms(a.perRound.p50), ms(a.perRound.p99), fmtDelta(a.cpuUsPerReq, 0)]),
    ),
  };
  const targetTable = {
    header: ['target', 'storage', 'limits and budgets', 'x-ratelimit-limit-requests', 'requests sent', 'ledger events', 'RSS idle (MB)', 'RSS after (MB)', 'peak RSS (MB)'],
    rows: targets.map((t) => [
      t.name,
      t.storage,
      t.limited ? '6 buckets, 2 budgets' : 'none',
      t.rateLimitHeader ?? '—',
      String(t.requestsSent),
      t.ledgerEvents === undefined ? 'n/a' : String(t.ledgerEvents),
      fmt(t.idleRss.rssMB, 1),
      fmt(t.rssAfter?.rssMB, 1),
      fmt(t.rssAfter?.peakRssMB, 1),
    ]),
  };
  const verdictTable = {
    header: ['target', 'goal', 'measured', 'verdict'],
    rows: vs.map((v) => [v.name, v.target, v.actual, `${v.pass ? 'PASS' : 'MISS'}${v.note ? ` (${v.note})` : ''}`]),
  };

  const k = checks.redisKeys;
  const checkLines = [
    `- Answers: ${derived.refusals === 0 ? 'no 429 or 402 in any measured run (the limits and budgets never refused)' : `**${derived.refusals} refusals (429/402)**`}; other errors per run in the "errors" column.`,
    `- Limits applied: ${targets.map((t) => `${t.name} ${t.rateLimitHeader === null ? 'sent no x-ratelimit-* headers' : `sent x-ratelimit-limit-requests: ${t.rateLimitHeader}`}`).join('; ')}.`,
    `- Ledger: ${targets.map((t) => `${t.name} ${t.ledgerEvents === undefined ? 'n/a' : `${t.ledgerEvents} events`} for ${t.requestsSent} requests sent`).join('; ')} (counted after each gateway stopped; cut-off requests are recorded too).`,
    ...(m.distributed
      ? [
          `- Redis (${redact(m.redisUrl)}), prefix \`${m.redisPrefix}\`: ${k ? `${k.total} keys under load (${k.rateBuckets} rate-limit buckets, ${k.budgets} budget counters, ${k.other} other)` : 'not inspected'}; ${checks.redisKeysDeleted === undefined ? '**not deleted**' : `${checks.redisKeysDeleted} deleted after the runs`}. PostgreSQL (${redact(m.postgresUrl)}), schema \`${m.postgresSchema}\`: ${checks.schemaDropped === undefined ? '**not dropped**' : checks.schemaDropped ? 'dropped' : 'was not there'}.`,
        ]
      : []),
  ];

  const distributedLine = m.distributed
    ? `\`tollgate-distributed-limits\` the same tiers with \`storage: {kind: distributed}\` (Redis and PostgreSQL on loopback, a schema and key prefix of its own, dropped after the run).`
    : 'The distributed target was skipped (BENCH_METERING_DISTRIBUTED=0).';
  const setup = [
    `- Targets, all \`tollgate start\` in front of the same \`tollgate sim --latency 0 --tps 0\`, one openai-compatible provider, API-key auth, \`logging.level: info\` (stdout to /dev/null), metrics on${m.profile ? ', **each run under --cpu-prof (numbers are slower than normal)**' : ''}: \`tollgate-core\` embedded, default tiers (no limits, no budgets) — **it still writes the ledger event of every request (metering is always on), so the added figures below are the cost of rate limits and budgets (plus, for the distributed target, of Redis and PostgreSQL storage) on top of a metered core path**; \`tollgate-embedded-limits\` embedded, tier \`standard\` with \`limits\` for tenant, key and user (${VERY_HIGH_LIMIT.tokensPerMinute.toLocaleString('en-US')} tokens and ${VERY_HIGH_LIMIT.requestsPerMinute.toLocaleString('en-US')} requests per minute each: 6 buckets taken per request, the 3 token buckets corrected after it when the usage differs from the estimate) and \`budgets\` for tenant and key (${VERY_HIGH_BUDGET.dailyUsd.toLocaleString('en-US')} USD a day each: 2 budgets reserved and settled per request); ${distributedLine}`,
    `- Request: \`POST /v1/chat/completions\`, model sim-small, one short user message, \`max_tokens: ${input.maxTokens}\`, \`user: "${m.user}"\`; \`stream: true\` for the stream rows. Same bytes to every target (each with its own API key).`,
    `- Fixed rate: evenly paced, open loop, ${R} req/s, up to ${m.rateConnections} connections, ${m.leadInS} s unmeasured lead-in; ${s.seconds} s per target and mode, as ${rate.count} rounds of ${fmt(rate.sliceS)} s. In each round the targets take turns, never at once, starting with a different one each round. Warm-up: ${s.warmupSeconds} s per target first (autocannon, ${m.warmupConnections} connections, ${m.modes.join(' and ')}).`,
    `- Latency: client side, from writing the request to the last byte of the answer, µs precision, 2xx only. Added: the target's percentile minus the baseline's over all samples (the verdicts use these); per-round median: the median over rounds of the same difference slice by slice, which resists bursts of outside load.`,
    `- CPU µs/req: CPU time (user + system, /proc) of the gateway process per request sent. Redis+PG: CPU of every \`redis-server\` and \`postgres\` process on the machine meanwhile, per request: an upper bound (they may serve others), and the cost the distributed target moves out of the gateway. Other load: CPU of everything else, in cores (2 cores, shared: noise).`,
  ].join('\n');

  const diff = input.profile ? profileDiff(input.profile, targets) : undefined;
  const profileMd = input.profile
    ? [
        '',
        "### Where the gateways' CPU goes (--cpu-prof over each whole run, warm-up included)",
        '',
        'µs of CPU per request sent, by area (self time) and by Tollgate function (callees included), sorted by how much more a limited target spends than tollgate-core. A profile covers the process from start to exit: one-off work (start-up, the tokenizer load on the first limited request, ~0.4 s) is spread over the requests, so short runs overstate it. Only synchronous work is inside a function: time waiting for Redis is not.',
        '',
        markdownTable(diff!.header, diff!.areas),
        '',
        markdownTable(diff!.header, diff!.functions),
        ...targets
          .filter((t) => input.profile!.summaries[t.name])
          .flatMap((t) => ['', `#### ${t.name}`, '', formatProfile(input.profile!.summaries[t.name]!, markdownTable)]),
      ]
    : [];

  const markdown = [
    '## Metering, rate limits and budgets (`npm run bench -- metering`)',
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
    `### Added latency at ${R} req/s`,
    '',
    markdownTable(addedTable.header, addedTable.rows),
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
    ...profileMd,
  ].join('\n');

  const summary = [
    `Machine: ${describeMachine(machine)}`,
    '',
    `Fixed rate (paced, ${m.rate} req/s, ${s.seconds} s per target and mode):`,
    textTable(rateTable.header, rateTable.rows),
    '',
    `Added latency at ${m.rate} req/s:`,
    textTable(addedTable.header, addedTable.rows),
    '',
    'Targets:',
    textTable(verdictTable.header, verdictTable.rows),
    '',
    'Checks:',
    ...checkLines,
    textTable(targetTable.header, targetTable.rows),
    ...(caveats.length ? ['', 'Caveats:', ...caveats.map((n) => `- ${n}`)] : []),
    ...(diff
      ? ['', 'CPU per request by area, vs tollgate-core (profile; one-off start-up work included, spread over the requests):', textTable(diff.header, diff.areas), '', 'By Tollgate function (callees included):', textTable(diff.header, diff.functions)]
      : []),
  ].join('\n');

  return { summary, markdown, verdicts: vs, derived, caveats };
}
