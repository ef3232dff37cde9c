/**
 * Metering, rate limits and budgets: what they add on top of the core path.
 *
 * Three gateways in front of one `tollgate sim --latency 0 --tps 0`, measured in turns at a fixed,
 * evenly paced 1,000 req/s (JSON and SSE chat completions carrying a `user`):
 *   tollgate-core                 embedded, no limits or budgets (the ledger event per request is
 *                                 always written: this is the metered core path)
 *   tollgate-embedded-limits      embedded, tier `standard` with very high token and request limits
 *                                 per tenant, key and user (6 buckets) and daily budgets per tenant
 *                                 and key (2 reserve + settle per request): nothing is refused
 *   tollgate-distributed-limits   the same tiers in distributed mode: Redis and PostgreSQL on
 *                                 loopback, in a PostgreSQL schema and Redis key prefix of its own,
 *                                 both removed afterwards
 * Targets: added p50 over tollgate-core <= 0.3 ms embedded, <= 1 ms distributed.
 *
 * Environment: BENCH_RATE (1000), BENCH_PROFILE (1: every gateway under --cpu-prof, and a "where the
 * CPU goes" comparison), BENCH_METERING_MODES (json,stream), BENCH_METERING_DISTRIBUTED (0 skips
 * the distributed target), BENCH_REDIS_URL (redis://127.0.0.1:6379), BENCH_POSTGRES_URL
 * (postgres://postgres@127.0.0.1:5432/test).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mainThreadProfile, summarizeCpuProfile } from '../lib/cpuprofile.js';
import { memoryMB, pidsNamed } from '../lib/process.js';
import { profileDir } from '../lib/results.js';
import { modesEnv, positiveEnv, reportFields, scenarioResult, type BenchSettings, type Scenario, type ScenarioReport } from '../lib/scenario.js';
import { countRows, countSqliteRows, DEFAULT_POSTGRES_URL, DEFAULT_REDIS_URL, deleteRedisKeys, dropSchema, redact, redisKeys, reserveStores, uniqueStoreNames } from '../lib/stores.js';
import { fmt } from '../lib/table.js';
import { chatRequest, checkRequest, childEnv, launchGateway, MAX_TOKENS, PROMPT, startSimulator, tollgateCli, type Gateway, type HttpTarget, type Mode } from '../lib/tollgate.js';
import { pacedTurns, rounds, settleTargets, warmUp } from '../lib/turns.js';
import {
  buildReport,
  LIMITED_TIERS,
  TARGETS,
  VERY_HIGH_BUDGET,
  VERY_HIGH_LIMIT,
  type MeteringSettings,
  type ProfileReport,
  type RunRecord,
  type StoreChecks,
  type TargetInfo,
  type TargetName,
} from './metering-report.js';

const LEDGER_TABLE = 'usage_events';
/** Processes whose CPU the distributed target's requests cause. */
const STORE_PROCESSES = ['redis-server', 'postgres'];

function meteringSettings(date: Date): MeteringSettings {
  const env = process.env;
  return {
    rate: positiveEnv('BENCH_RATE', 1_000),
    rateConnections: 50,
    leadInS: 0.5,
    warmupConnections: 50,
    modes: modesEnv('BENCH_METERING_MODES', 'json,stream'),
    user: 'bench-user',
    profile: env.BENCH_PROFILE === '1',
    distributed: env.BENCH_METERING_DISTRIBUTED !== '0',
    redisUrl: env.BENCH_REDIS_URL || DEFAULT_REDIS_URL,
    postgresUrl: env.BENCH_POSTGRES_URL || DEFAULT_POSTGRES_URL,
    ...uniqueStoreNames('metering', date),
  };
}

interface TargetDef {
  name: TargetName;
  storage: 'embedded' | 'distributed';
  limited: boolean;
  description: string;
}

const TARGET_DEFS: TargetDef[] = [
  { name: 'tollgate-core', storage: 'embedded', limited: false, description: 'embedded, no limits or budgets (ledger event per request still written)' },
  { name: 'tollgate-embedded-limits', storage: 'embedded', limited: true, description: 'embedded, 6 rate-limit buckets and 2 budgets per request' },
  { name: 'tollgate-distributed-limits', storage: 'distributed', limited: true, description: 'distributed (Redis + PostgreSQL on loopback), same tiers' },
];

interface MeteredGateway extends Gateway {
  def: TargetDef;
  info: TargetInfo;
}

async function startGateways(s: BenchSettings, m: MeteringSettings, tmp: string, sim: HttpTarget, started: MeteredGateway[]): Promise<void> {
  for (const def of TARGET_DEFS.filter((d) => m.distributed || d.storage === 'embedded')) {
    const dir = join(tmp, def.name);
    const distributed = def.storage === 'distributed';
    const cpuProfileDir = m.profile ? profileDir('metering', s.date, def.name) : undefined;
    const g = await launchGateway({
      name: def.name,
      root: s.root,
      dir,
      simOrigin: sim.origin,
      log: s.log,
      ...(distributed ? { storage: { kind: 'distributed', redisUrl: m.redisUrl, postgresUrl: m.postgresUrl, postgresSchema: m.postgresSchema, redisPrefix: m.redisPrefix, dir: join(dir, 'state') } } : {}),
      ...(def.limited ? { extra: { tiers: LIMITED_TIERS } } : {}),
      ...(distributed ? { note: ` (PostgreSQL schema ${m.postgresSchema}, Redis prefix ${m.redisPrefix})` } : {}),
      cpuProfileDir,
    });
    const info: TargetInfo = { ...def, rateLimitHeader: null, idleRss: g.idleRss, requestsSent: 0, ...(cpuProfileDir ? { profileDir: cpuProfileDir } : {}) };
    started.push({ ...g, def, info });
  }
}

function request(g: MeteredGateway, mode: Mode, m: MeteringSettings) {
  return chatRequest(g.origin, mode, g.apiKey, { user: m.user });
}

/** One request per mode through each gateway: fails early and clearly, and checks the limits apply where (and only where) configured. */
async function preflight(gateways: MeteredGateway[], m: MeteringSettings): Promise<void> {
  for (const g of gateways) {
    for (const mode of m.modes) {
      const headers = await checkRequest(request(g, mode, m), g.proc, `${g.def.name} (${mode})`);
      g.info.requestsSent++;
      const limit = headers.get('x-ratelimit-limit-requests');
      if (g.def.limited && limit !== String(VERY_HIGH_LIMIT.requestsPerMinute)) {
        throw new Error(`${g.def.name} (${mode}) answered x-ratelimit-limit-requests: ${limit ?? '(none)'}, expected ${VERY_HIGH_LIMIT.requestsPerMinute}: its tier limits do not apply`);
      }
      if (!g.def.limited && limit !== null) throw new Error(`${g.def.name} (${mode}) answered x-ratelimit-limit-requests: ${limit}; the baseline must have no limits`);
      g.info.rateLimitHeader = limit;
    }
  }
}

/** Runs `fn`; a failure is logged and noted in `checks.errors`, never thrown. */
async function attempt(checks: StoreChecks, log: (l: string) => void, what: string, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    const msg = `${what} failed: ${err instanceof Error ? err.message : String(err)}`;
    checks.errors.push(msg);
    log(msg);
  }
}

/**
 * The counters under the run's Redis prefix, while the distributed target is under load (a
 * rate-limit bucket expires about 1 s after it is full again, so after the runs there are none).
 */
async function inspectRedis(m: MeteringSettings, checks: StoreChecks, log: (l: string) => void): Promise<void> {
  await attempt(checks, log, `listing Redis keys under ${m.redisPrefix}`, async () => {
    const keys = await redisKeys(m.redisUrl, m.redisPrefix);
    const rateBuckets = keys.filter((k) => k.includes(':rl:')).length;
    const budgets = keys.filter((k) => k.includes(':budget:')).length;
    checks.redisKeys = { total: keys.length, rateBuckets, budgets, other: keys.length - rateBuckets - budgets };
  });
}

/** Ledger rows, then removal of the run's schema and keys. Never throws: problems go to `checks.errors`. */
async function inspectAndClean(gateways: MeteredGateway[], m: MeteringSettings, checks: StoreChecks, log: (l: string) => void): Promise<void> {
  const attempt_ = (what: string, fn: () => Promise<void>) => attempt(checks, log, what, fn);
  for (const g of gateways) {
    await attempt_(`counting ${g.def.name}'s ledger events`, async () => {
      g.info.ledgerEvents =
        g.def.storage === 'distributed' ? await countRows(m.postgresUrl, m.postgresSchema, LEDGER_TABLE) : await countSqliteRows(join(g.dir, 'state', 'tollgate.db'), LEDGER_TABLE);
    });
  }
  if (!m.distributed) return;
  await attempt_(`deleting Redis keys under ${m.redisPrefix} (${redact(m.redisUrl)})`, async () => {
    checks.redisKeysDeleted = await deleteRedisKeys(m.redisUrl, m.redisPrefix);
    if ((await redisKeys(m.redisUrl, m.redisPrefix)).length > 0) throw new Error('keys remain after deletion');
  });
  await attempt_(`dropping PostgreSQL schema ${m.postgresSchema} (${redact(m.postgresUrl)})`, async () => {
    checks.schemaDropped = await dropSchema(m.postgresUrl, m.postgresSchema);
  });
  log(`clean-up: Redis keys deleted: ${checks.redisKeysDeleted ?? 'n/a'}; PostgreSQL schema ${m.postgresSchema} dropped: ${checks.schemaDropped ?? 'n/a'}`);
}

function profiles(gateways: MeteredGateway[], log: (l: string) => void): ProfileReport | undefined {
  const report: ProfileReport = { summaries: {}, inclusive: {}, byArea: {} };
  let any = false;
  for (const g of gateways) {
    const dir = g.info.profileDir;
    if (!dir) continue;
    const file = mainThreadProfile(dir);
    if (!file) {
      log(`${g.def.name} wrote no .cpuprofile to ${dir} (did it exit cleanly on SIGTERM?)`);
      continue;
    }
    any = true;
    report.summaries[g.def.name] = summarizeCpuProfile(join(dir, file), 25);
    const full = summarizeCpuProfile(join(dir, file), 100_000);
    report.inclusive[g.def.name] = full.inclusiveTollgate;
    report.byArea[g.def.name] = full.byArea;
  }
  return any ? report : undefined;
}

export const meteringScenario: Scenario = {
  name: 'metering',
  description: 'What metering, rate limits and budgets add over the core path at 1,000 req/s, embedded and distributed (Redis + PostgreSQL)',
  async run(s: BenchSettings): Promise<ScenarioReport> {
    const m = meteringSettings(s.date);
    // Should the run be cut short (Ctrl-C, a failure), run.ts's stopAll still removes the run's schema and keys.
    const unregister = m.distributed
      ? await reserveStores({ ...m, schemas: [m.postgresSchema], skip: 'BENCH_METERING_DISTRIBUTED=0 to skip the distributed target' })
      : () => {};
    const tmp = mkdtempSync(join(tmpdir(), 'tollgate-bench-metering-'));
    const rate = rounds(s.seconds, 1);
    const runs: RunRecord[] = [];
    const gateways: MeteredGateway[] = [];
    let sim: HttpTarget | undefined;
    const checks: StoreChecks = { errors: [] };
    try {
      s.log('starting simulator');
      sim = await startSimulator({ cli: tollgateCli(s.root), cwd: tmp, env: childEnv() });
      const simTarget = sim;
      await startGateways(s, m, tmp, simTarget, gateways);
      await preflight(gateways, m);

      for (const g of gateways) {
        // Half-way through the distributed target's warm-up, see what it keeps in Redis.
        const probe =
          g.def.storage === 'distributed' ? new Promise((r) => setTimeout(r, (s.warmupSeconds * 1000) / 2)).then(() => inspectRedis(m, checks, s.log)) : undefined;
        const w = await warmUp({
          name: g.def.name,
          requests: m.modes.map((mode) => request(g, mode, m)),
          connections: m.warmupConnections,
          seconds: s.warmupSeconds,
          what: m.modes.length > 1 ? 'JSON and SSE alternating' : m.modes[0] === 'json' ? 'JSON' : 'SSE',
          log: s.log,
        });
        await probe;
        g.info.requestsSent += w.sent;
      }
      // The first limited request loads the tokenizer (~0.4 s of blocking CPU): let every process settle.
      await settleTargets([simTarget.proc.pid, ...gateways.map((g) => g.proc.pid)], s.log);

      for (const mode of m.modes) {
        s.log(`${mode}: fixed rate ${m.rate} req/s, ${rate.count} rounds of ${fmt(rate.sliceS)} s per target`);
        const results = await pacedTurns(
          gateways.map((g) => ({ name: g.def.name, pid: g.proc.pid, request: request(g, mode, m) })),
          // The store processes (PostgreSQL starts one per connection: looked up at every slice).
          { label: mode, log: s.log, sim: { origin: simTarget.origin, pid: simTarget.proc.pid }, related: () => pidsNamed(STORE_PROCESSES), rate: m.rate, connections: m.rateConnections, rounds: rate, leadInS: m.leadInS },
        );
        gateways.forEach((g, i) => (g.info.requestsSent += results[i]!.load.sent));
        runs.push(...results.map((r, i): RunRecord => ({ mode, target: gateways[i]!.def.name, ...r })));
      }
      for (const g of gateways) g.info.rssAfter = memoryMB(g.proc.pid);
    } finally {
      // Gateways first (their ledger flushes on close; under --cpu-prof they write the profile as they exit).
      for (const g of [...gateways].reverse()) await g.proc.stop(m.profile ? 30_000 : 10_000);
      await sim?.proc.stop();
      await inspectAndClean(gateways, m, checks, s.log);
      if (checks.redisKeysDeleted !== undefined && checks.schemaDropped !== undefined) unregister();
      rmSync(tmp, { recursive: true, force: true });
    }

    const profile = m.profile ? profiles(gateways, s.log) : undefined;
    const targets = gateways.map((g) => g.info);
    const report = buildReport({ runs, targets, checks, metering: m, settings: s, rate, maxTokens: MAX_TOKENS, profile });
    return scenarioResult('metering', s, report, {
      settings: {
        ...m,
        redisUrl: redact(m.redisUrl),
        postgresUrl: redact(m.postgresUrl),
        seconds: s.seconds,
        warmupSeconds: s.warmupSeconds,
        rounds: rate,
        maxTokens: MAX_TOKENS,
        prompt: PROMPT,
        limitedTiers: LIMITED_TIERS,
        veryHigh: { limit: VERY_HIGH_LIMIT, budget: VERY_HIGH_BUDGET },
      },
      goals: TARGETS,
      targets,
      runs,
      ...reportFields(report, { checks }),
      ...(profile ? { profile: profile.summaries } : {}),
    });
  },
};
