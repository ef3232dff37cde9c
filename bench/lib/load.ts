/**
 * What a load run sends and what it measured; shared by the autocannon and paced drivers.
 *
 * A run may be made of slices (e.g. ten 1 s slices, interleaved with other targets' slices so that
 * noise on a shared machine lands on every target alike); `combine` pools their samples.
 */
import { summarize, type LatencySummary } from './stats.js';

export interface HttpRequestSpec {
  /** e.g. http://127.0.0.1:40123 */
  origin: string;
  /** e.g. /v1/chat/completions */
  path: string;
  method: 'GET' | 'POST';
  headers: Record<string, string>;
  body?: string;
  /**
   * Checks a 2xx response body (autocannon gives the whole body; the paced driver the last 64
   * characters, enough for a `[DONE]` check). A false counts as `invalid`.
   */
  verify?: (body: string) => boolean;
}

/** One slice of load, with its raw samples (ms, µs precision). */
export interface LoadSlice {
  driver: 'autocannon' | 'paced';
  /** Requests per second asked for (fixed-rate runs only). */
  targetRate?: number;
  connections: number;
  /** Length of the measured window, seconds. */
  elapsedS: number;
  /** Requests written to the target, unmeasured lead-in included (for CPU and upstream accounting). */
  sent: number;
  /** Measured requests that got a complete response (any status). */
  completed: number;
  /** Responses of any status, lead-in included. */
  answered: number;
  statusCodes: Record<string, number>;
  non2xx: number;
  /** Connection errors (no response at all). */
  errors: number;
  timeouts: number;
  /** 2xx responses whose body failed `verify`. */
  invalid: number;
  /** Time from writing the request to the last byte of the response, 2xx only. */
  latency: Float64Array;
  /** Paced: time to the first body byte, 2xx only. */
  ttfb?: Float64Array;
  /** Paced: how late each request left against its schedule (load generator lag). */
  lag?: Float64Array;
  /** Paced: latency counted from the scheduled send time (coordinated-omission free). */
  fromSchedule?: Float64Array;
}

export interface LoadResult {
  driver: 'autocannon' | 'paced';
  targetRate?: number;
  connections: number;
  slices: number;
  elapsedS: number;
  sent: number;
  completed: number;
  answered: number;
  /** Completed requests per second of measured time. */
  rps: number;
  statusCodes: Record<string, number>;
  non2xx: number;
  errors: number;
  timeouts: number;
  invalid: number;
  latencyMs: LatencySummary;
  ttfbMs?: LatencySummary;
  dispatchLagMs?: LatencySummary;
  latencyFromScheduleMs?: LatencySummary;
  /** p50 and p99 of each slice on its own: how much they move is a measure of the noise. */
  perSlice: { rps: number; p50: number; p99: number }[];
}

function concat(arrays: (Float64Array | undefined)[]): Float64Array | undefined {
  if (arrays.some((a) => a === undefined)) return undefined;
  const list = arrays as Float64Array[];
  const out = new Float64Array(list.reduce((n, a) => n + a.length, 0));
  let at = 0;
  for (const a of list) {
    out.set(a, at);
    at += a.length;
  }
  return out;
}

/** Pools slices (of one driver, one target, one request) into one result. */
export function combine(slices: LoadSlice[]): LoadResult {
  const first = slices[0];
  if (!first) throw new Error('combine: no slices');
  const sum = (f: (s: LoadSlice) => number) => slices.reduce((n, s) => n + f(s), 0);
  const statusCodes: Record<string, number> = {};
  for (const s of slices) for (const [code, n] of Object.entries(s.statusCodes)) statusCodes[code] = (statusCodes[code] ?? 0) + n;
  const elapsedS = sum((s) => s.elapsedS);
  const completed = sum((s) => s.completed);
  const ttfb = concat(slices.map((s) => s.ttfb));
  const lag = concat(slices.map((s) => s.lag));
  const fromSchedule = concat(slices.map((s) => s.fromSchedule));
  return {
    driver: first.driver,
    ...(first.targetRate !== undefined ? { targetRate: first.targetRate } : {}),
    connections: first.connections,
    slices: slices.length,
    elapsedS,
    sent: sum((s) => s.sent),
    completed,
    answered: sum((s) => s.answered),
    rps: completed / elapsedS,
    statusCodes,
    non2xx: sum((s) => s.non2xx),
    errors: sum((s) => s.errors),
    timeouts: sum((s) => s.timeouts),
    invalid: sum((s) => s.invalid),
    latencyMs: summarize(concat(slices.map((s) => s.latency)) ?? new Float64Array()),
    ...(ttfb ? { ttfbMs: summarize(ttfb) } : {}),
    ...(lag ? { dispatchLagMs: summarize(lag) } : {}),
    ...(fromSchedule ? { latencyFromScheduleMs: summarize(fromSchedule) } : {}),
    perSlice: slices.map((s) => {
      const l = summarize(s.latency);
      return { rps: s.completed / s.elapsedS, p50: l.p50, p99: l.p99 };
    }),
  };
}

/** A fixed-rate run that fell more than 3% short of its rate measured the target's queue, not its latency. */
export function rateShortfall(r: LoadResult): boolean {
  return r.targetRate !== undefined && r.rps < r.targetRate * 0.97;
}

/** True when nothing went wrong: no errors, timeouts, non-2xx answers, invalid bodies or missed rate. */
export function isClean(r: LoadResult): boolean {
  return r.errors === 0 && r.timeouts === 0 && r.non2xx === 0 && r.invalid === 0 && r.completed > 0 && !rateShortfall(r);
}

/** "3 non-2xx (502: 3), 1 error" or "" when clean. */
export function problems(r: LoadResult): string {
  const out: string[] = [];
  if (r.non2xx) {
    const codes = Object.entries(r.statusCodes)
      .filter(([c]) => !c.startsWith('2'))
      .map(([c, n]) => `${c}: ${n}`)
      .join(', ');
    out.push(`${r.non2xx} non-2xx (${codes})`);
  }
  if (r.errors) out.push(`${r.errors} errors`);
  if (r.timeouts) out.push(`${r.timeouts} timeouts`);
  if (r.invalid) out.push(`${r.invalid} invalid bodies`);
  if (r.completed === 0) out.push('no responses');
  if (rateShortfall(r)) out.push(`rate not sustained (${Math.round(r.rps)} of ${r.targetRate} req/s)`);
  return out.join(', ');
}
