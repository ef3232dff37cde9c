/**
 * Measuring targets in turns on a shared machine: a measurement is cut into rounds, and in each
 * round every target runs one slice, one after the other, never at once. A burst of outside load
 * then lands on every target alike. A `TurnMeter` collects one target's slices and charges to it
 * the CPU time used while they ran (and while it settled after each), the simulator calls they
 * caused, and the CPU everything else on the machine used meanwhile ("other load").
 */
import { runAutocannon } from './autocannon.js';
import { combine, isClean, problems, type HttpRequestSpec, type LoadResult, type LoadSlice } from './load.js';
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
