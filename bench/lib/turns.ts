/**
 * Measuring targets in turns on a shared machine: a measurement is cut into rounds, and in each
 * round every target runs one slice, one after the other, never at once (`runRounds`). A burst of
 * outside load then lands on every target alike. A `TurnMeter` collects one target's slices and
 * charges to it the CPU time used while they ran (and while it settled after each), the simulator
 * calls they caused, and the CPU everything else on the machine used meanwhile ("other load").
 * `pacedTurns` is the common case: every target at the same evenly paced rate. Also the warm-ups
 * before measuring, and the wait for the targets to settle after them.
 */
import { runAutocannon } from './autocannon.js';
import { combine, isClean, problems, type HttpRequestSpec, type LoadResult, type LoadSlice } from './load.js';
import { PacedSession } from './paced.js';
import { cpuTimeMs, cpuTimesMs, machineBusyMs, waitForIdle } from './process.js';
import { fmt } from './table.js';
import { simTotal } from './tollgate.js';

/** Longest wait after a slice for the target to go idle. */
export const SLICE_SETTLE_MAX_MS = 3_000;

/**
 * Splits `seconds` into rounds of `slice` seconds; each round runs every target once, in turn, so a
 * burst of outside load on the shared machine falls on all targets rather than on one.
 */
export function rounds(seconds: number, slice: number): { count: number; sliceS: number } {
  const count = Math.max(1, Math.round(seconds / slice));
  return { count, sliceS: seconds / count };
}

export interface TurnCpu {
  /** CPU time of the process the load hits, per request sent (µs). */
  targetUsPerReq: number;
  /** The simulator's CPU per request (µs). */
  simUsPerReq: number;
  /** The load generator's (this process's) CPU per request (µs). */
  loadGenUsPerReq: number;
  /** CPU used by everything else on the machine during the slices, in cores: noise. */
  foreignCores: number;
  /**
   * CPU of the `related` processes (e.g. the Redis and PostgreSQL servers the target talks to) per
   * request (µs). They may serve others too: an upper bound. Only when `related` was given.
   */
  relatedUsPerReq?: number;
}

/** What one target's slices measured, pooled. */
export interface MeasuredRun {
  load: LoadResult;
  cpu: TurnCpu;
  /** Simulator requests per answered request. */
  upstreamCallsPerRequest: number;
  /** Simulator requests during the slices; requests sent and answered (lead-in included). */
  upstream: { calls: number; sent: number; answered: number };
}

/** Who goes first in a round: the next target each round (none always follows the same one), or the given order every round. */
export type RoundOrder = 'rotating' | 'fixed';

/** `count` rounds; in each, `turn(i, round)` for every target index i, one after the other. */
export async function runRounds(targets: number, count: number, turn: (index: number, round: number) => Promise<unknown>, order: RoundOrder = 'rotating'): Promise<void> {
  for (let round = 0; round < count; round++) {
    for (let k = 0; k < targets; k++) await turn(order === 'rotating' ? (round + k) % targets : k, round);
  }
}

export interface TurnMeterOptions {
  /** The process the load hits (may be the simulator itself). */
  targetPid: number;
  sim: { origin: string; pid: number };
  /**
   * Other processes whose CPU the target's requests cause (looked up anew at each slice: e.g.
   * PostgreSQL's per-connection processes): reported apart (`relatedUsPerReq`), not as other load.
   */
  related?: () => number[];
  /** Longest wait after each slice for the target and the simulator to go idle (default 3 s). */
  settleMaxMs?: number;
}

/** The slices of one target (one request kind) and the resources they used. */
export class TurnMeter {
  readonly slices: LoadSlice[] = [];
  private totals = { target: 0, sim: 0, self: 0, related: 0, foreign: 0, wallMs: 0 };
  private simCalls = 0;

  constructor(private readonly opts: TurnMeterOptions) {}

  /** Runs one slice, charging CPU time and upstream calls to it. */
  async measure(run: () => Promise<LoadSlice>): Promise<LoadSlice> {
    const { targetPid, sim, related } = this.opts;
    const simBefore = await simTotal(sim.origin);
    const t0 = process.hrtime.bigint();
    const relatedBefore = related ? cpuTimesMs(related()) : undefined;
    const before = { target: cpuTimeMs(targetPid), sim: cpuTimeMs(sim.pid), self: cpuTimeMs('self'), busy: machineBusyMs() };
    const slice = await run();
    // Work a slice leaves behind (streams cut off at its end, settle) belongs to it, and must
    // not land in the next target's slice.
    await waitForIdle([targetPid, sim.pid], { maxMs: this.opts.settleMaxMs ?? SLICE_SETTLE_MAX_MS });
    const after = { target: cpuTimeMs(targetPid), sim: cpuTimeMs(sim.pid), self: cpuTimeMs('self'), busy: machineBusyMs() };
    let relatedMs = 0;
    if (related && relatedBefore) {
      // A process that appeared during the slice (a new connection's backend) counts whole.
      for (const [pid, ms] of cpuTimesMs(related())) relatedMs += ms - (relatedBefore.get(pid) ?? 0);
    }
    this.totals.wallMs += Number(process.hrtime.bigint() - t0) / 1e6;
    this.simCalls += (await simTotal(sim.origin)) - simBefore;
    const d = { target: after.target - before.target, sim: after.sim - before.sim, self: after.self - before.self, busy: after.busy - before.busy };
    this.totals.target += d.target;
    this.totals.sim += d.sim;
    this.totals.self += d.self;
    this.totals.related += relatedMs;
    this.totals.foreign += Math.max(0, d.busy - d.self - d.sim - (targetPid === sim.pid ? 0 : d.target) - relatedMs);
    this.slices.push(slice);
    return slice;
  }

  /** The slices pooled. */
  load(): LoadResult {
    return combine(this.slices);
  }

  /** CPU per request sent (lead-in included) and other load over the slices. */
  cpu(load: LoadResult = this.load()): TurnCpu {
    const n = Math.max(1, load.sent);
    const t = this.totals;
    return {
      targetUsPerReq: (t.target * 1000) / n,
      simUsPerReq: (t.sim * 1000) / n,
      loadGenUsPerReq: (t.self * 1000) / n,
      foreignCores: t.foreign / t.wallMs,
      ...(this.opts.related ? { relatedUsPerReq: (t.related * 1000) / n } : {}),
    };
  }

  /** Simulator requests during the slices; requests sent and answered (lead-in included). */
  upstream(load: LoadResult = this.load()): { calls: number; sent: number; answered: number } {
    return { calls: this.simCalls, sent: load.sent, answered: load.answered };
  }

  /** Everything above, for the report. */
  result(): MeasuredRun {
    const load = this.load();
    const upstream = this.upstream(load);
    return { load, cpu: this.cpu(load), upstreamCallsPerRequest: upstream.calls / Math.max(1, load.answered), upstream };
  }
}

export interface PacedTurnsOptions {
  /** Starts each target's log line (e.g. the request mode). */
  label: string;
  log(line: string): void;
  sim: { origin: string; pid: number };
  /** See TurnMeterOptions.related. */
  related?: () => number[];
  rate: number;
  connections: number;
  rounds: { count: number; sliceS: number };
  /** Unmeasured lead-in before each target's first slice, s. */
  leadInS: number;
  order?: RoundOrder;
  /** Runs inside each slice after its load, charged to it (e.g. a wait for batched background work). */
  afterLoad?: () => Promise<void>;
  /** Wraps each turn (e.g. to read counters before and after it). */
  aroundTurn?: (index: number, turn: () => Promise<void>) => Promise<void>;
}

/**
 * Every target at the same evenly paced rate, in rounds of one slice each (`runRounds`), each with
 * its own keep-alive connections. Logs and returns what each target's slices measured.
 */
export async function pacedTurns(targets: { name: string; pid: number; request: HttpRequestSpec }[], o: PacedTurnsOptions): Promise<MeasuredRun[]> {
  const meters = targets.map((t) => new TurnMeter({ targetPid: t.pid, sim: o.sim, ...(o.related ? { related: o.related } : {}) }));
  const sessions = targets.map((t) => new PacedSession(t.request, o.connections));
  try {
    await runRounds(
      targets.length,
      o.rounds.count,
      async (i, round) => {
        const turn = async () => {
          await (meters[i] as TurnMeter).measure(async () => {
            const slice = await (sessions[i] as PacedSession).run(o.rate, o.rounds.sliceS, round === 0 ? o.leadInS : 0);
            await o.afterLoad?.();
            return slice;
          });
        };
        await (o.aroundTurn ? o.aroundTurn(i, turn) : turn());
      },
      o.order,
    );
  } finally {
    await Promise.all(sessions.map((x) => x.close()));
  }
  const width = Math.max(...targets.map((t) => t.name.length));
  return meters.map((m, i) => {
    const r = m.result();
    o.log(`${o.label.padEnd(6)} ${(targets[i]?.name ?? '').padEnd(width)} ${describeLoad(r.load, r.cpu)}  sim calls/req ${fmt(r.upstreamCallsPerRequest, 3)}`);
    return r;
  });
}

/** "  998 req/s  p50 0.57  p90 2.28  p99 22.01 ms  cpu 252 µs/req  other load 0.85 cores  !! 3 errors" */
export function describeLoad(load: LoadResult, cpu: TurnCpu): string {
  const issues = problems(load);
  return (
    `${fmt(load.rps, 0).padStart(6)} req/s  ` +
    `p50 ${fmt(load.latencyMs.p50)}  p90 ${fmt(load.latencyMs.p90)}  p99 ${fmt(load.latencyMs.p99)} ms  ` +
    `cpu ${fmt(cpu.targetUsPerReq, 0)} µs/req  other load ${fmt(cpu.foreignCores)} cores` +
    (issues ? `  !! ${issues}` : '')
  );
}

/**
 * Warms a target up at the rate it is measured at (e.g. where a closed loop would overflow a
 * bounded queue the measured runs never fill): `seconds` shared by `requests`, one after the other.
 * Logs what went wrong, if anything; returns the requests sent.
 */
export async function pacedWarmUp(o: { name: string; requests: HttpRequestSpec[]; rate: number; connections: number; seconds: number; log(line: string): void }): Promise<number> {
  o.log(`warm-up ${o.name}: ${o.seconds} s at ${o.rate} req/s`);
  let sent = 0;
  for (const request of o.requests) {
    const session = new PacedSession(request, o.connections);
    try {
      const w = combine([await session.run(o.rate, o.seconds / o.requests.length)]);
      sent += w.sent;
      if (!isClean(w)) o.log(`  warm-up of ${o.name}: ${problems(w)}`);
    } finally {
      await session.close();
    }
  }
  return sent;
}

/**
 * After the warm-ups, waits (up to 15 s) for every process to go idle: the first requests leave
 * one-off work behind (Tollgate loads its tokenizer, ~0.4 s of blocking CPU, the first time it
 * needs it) that must not land in a measured slice.
 */
export async function settleTargets(pids: number[], log: (line: string) => void, what = 'targets'): Promise<void> {
  const waited = await waitForIdle(pids, { maxMs: 15_000, windowMs: 250, threshold: 0.05 });
  log(`${what} idle after ${waited} ms`);
}

/**
 * Warms a target up: closed-loop autocannon with `connections` for `seconds`, cycling through
 * `requests` (e.g. JSON then SSE). Logs what went wrong, if anything; returns the result.
 */
export async function warmUp(opts: { name: string; requests: HttpRequestSpec[]; connections: number; seconds: number; what: string; log(line: string): void }): Promise<LoadResult> {
  opts.log(`warm-up ${opts.name}: ${opts.seconds} s, ${opts.connections} connections, ${opts.what}`);
  const w = await runAutocannon({ request: opts.requests, connections: opts.connections, durationS: opts.seconds });
  const wr = combine([w]);
  if (!isClean(wr)) opts.log(`  warm-up of ${opts.name}: ${problems(wr)}`);
  return wr;
}
