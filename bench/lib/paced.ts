/**
 * An open-loop, evenly paced load driver: request i is due at start + i / rate, whether or not
 * earlier requests have answered (up to `connections` in flight; beyond that undici queues them,
 * and the wait shows in the latency measured from the schedule).
 *
 * This is what "N requests/s" means for a latency target. autocannon's `overallRate` meters each
 * connection per second instead, so every second begins with a burst at full concurrency and its
 * latencies measure queueing inside that burst (see bench/README.md).
 *
 * Latencies are process.hrtime.bigint() differences, reported in ms with µs precision. A session
 * keeps its keep-alive connections between slices.
 */
import { Pool, type Dispatcher } from 'undici';
import type { HttpRequestSpec, LoadSlice } from './load.js';
import { msBetween, Samples } from './stats.js';

const TAIL = 64;

export class PacedSession {
  private readonly pool: Pool;

  constructor(
    private readonly request: HttpRequestSpec,
    private readonly connections: number,
    private readonly timeoutMs = 10_000,
  ) {
    this.pool = new Pool(request.origin, {
      connections,
      pipelining: 1,
      keepAliveTimeout: 60_000,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });
  }

  /**
   * Sends `rate` requests/s for `leadInS` (unmeasured) then `durationS` (measured) seconds, and
   * waits (bounded) for the answers.
   */
  async run(rate: number, durationS: number, leadInS = 0): Promise<LoadSlice> {
    const { request } = this;
    const leadIn = Math.round(rate * leadInS);
    const total = leadIn + Math.round(rate * durationS);
    const intervalNs = BigInt(Math.round(1e9 / rate));

    const latency = new Samples();
    const fromSchedule = new Samples();
    const ttfb = new Samples();
    const lag = new Samples();
    const statusCodes: Record<string, number> = {};
    let completed = 0;
    let answered = 0;
    let non2xx = 0;
    let errors = 0;
    let timeouts = 0;
    let invalid = 0;
    let settled = 0;
    let windowStart = 0n;
    let windowEnd = 0n;

    let resolveAll!: () => void;
    const allSettled = new Promise<void>((r) => (resolveAll = r));
    const settle = (record: boolean) => {
      settled++;
      if (record) windowEnd = process.hrtime.bigint();
      if (settled === total) resolveAll();
    };

    const fire = (i: number, scheduled: bigint): void => {
      const sent = process.hrtime.bigint();
      const record = i >= leadIn;
      if (record) {
        if (i === leadIn) windowStart = scheduled;
        lag.push(msBetween(scheduled, sent));
      }
      let statusCode = 0;
      let first = 0n;
      let tail = '';
      const fail = (err: Error & { code?: string }) => {
        if (record) {
          if (err.code === 'UND_ERR_HEADERS_TIMEOUT' || err.code === 'UND_ERR_BODY_TIMEOUT') timeouts++;
          else errors++;
        }
        settle(record);
      };
      // dispatch() with a handler: no Readable stream and no promise per request.
      const handler: Dispatcher.DispatchHandler = {
        // Its presence selects undici's current handler API.
        onRequestStart() {},
        onResponseStart(_controller, status) {
          statusCode = status;
        },
        onResponseData(_controller, chunk) {
          if (first === 0n) first = process.hrtime.bigint();
          tail = chunk.length >= TAIL ? chunk.toString('latin1', chunk.length - TAIL) : (tail + chunk.toString('latin1')).slice(-TAIL);
        },
        onResponseEnd() {
          const end = process.hrtime.bigint();
          answered++;
          if (record) {
            completed++;
            statusCodes[statusCode] = (statusCodes[statusCode] ?? 0) + 1;
            if (statusCode >= 200 && statusCode < 300) {
              latency.push(msBetween(sent, end));
              fromSchedule.push(msBetween(scheduled, end));
              ttfb.push(msBetween(sent, first === 0n ? end : first));
              if (request.verify && !request.verify(tail)) invalid++;
            } else non2xx++;
          }
          settle(record);
        },
        onResponseError(_controller, err) {
          fail(err);
        },
      };
      try {
        this.pool.dispatch({ path: request.path, method: request.method, headers: request.headers, body: request.body ?? null }, handler);
      } catch (err) {
        fail(err as Error);
      }
    };

    const start = process.hrtime.bigint();
    let next = 0;
    // setTimeout(1) wakes about once per ms; each wake sends every request that has come due, so
    // the schedule holds on average and no request leaves early.
    await new Promise<void>((done) => {
      const tick = () => {
        const now = process.hrtime.bigint();
        while (next < total) {
          const due = start + BigInt(next) * intervalNs;
          if (due > now) break;
          fire(next++, due);
        }
        if (next < total) setTimeout(tick, 1);
        else done();
      };
      tick();
    });

    // Bounded drain: every request has its own timeout; this is a backstop.
    let drainTimer: NodeJS.Timeout | undefined;
    await Promise.race([allSettled, new Promise<void>((r) => (drainTimer = setTimeout(r, this.timeoutMs + 2_000)))]);
    clearTimeout(drainTimer);
    const stragglers = total - settled;

    return {
      driver: 'paced',
      targetRate: rate,
      connections: this.connections,
      elapsedS: Number((windowEnd || process.hrtime.bigint()) - windowStart) / 1e9,
      sent: next,
      completed,
      answered,
      statusCodes,
      non2xx,
      errors,
      timeouts: timeouts + stragglers,
      invalid,
      latency: latency.values(),
      ttfb: ttfb.values(),
      lag: lag.values(),
      fromSchedule: fromSchedule.values(),
    };
  }

  /** Drops the connections (and anything still in flight). */
  close(): Promise<void> {
    return this.pool.destroy();
  }
}
