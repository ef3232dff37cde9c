/**
 * autocannon as a closed-loop load driver (N connections, each sending its next request as soon as
 * the previous answer ends).
 *
 * autocannon's own latency percentiles are not used: its HDR histogram records integer
 * milliseconds (lowestDiscernibleValue 1), and with `overallRate` it also adds synthetic
 * coordinated-omission samples (recordValueWithExpectedInterval), so its p50/p99 are both coarse
 * and inflated. Instead every response's duration is taken from the instance's `response` event,
 * which carries the client's process.hrtime() measurement as a float in ms.
 */
import autocannon from 'autocannon';
import type { HttpRequestSpec, LoadSlice } from './load.js';
import { Samples } from './stats.js';

export interface AutocannonOptions {
  /** One request, or several that each connection cycles through (e.g. JSON then SSE). */
  request: HttpRequestSpec | HttpRequestSpec[];
  connections: number;
  durationS: number;
  /**
   * Total requests/s over all connections. Caution: autocannon meters it per connection per
   * second, so each second starts with a burst at full concurrency and then idles; see
   * bench/README.md. The paced driver (paced.ts) sends at an even rate instead.
   */
  overallRate?: number;
  /** Per-request timeout, seconds (default 10). */
  timeoutS?: number;
  /**
   * Called with each response's raw header list ([name, value, name, value...], names as sent)
   * as soon as its headers are parsed, e.g. to count a header's values.
   */
  onHeaders?: (raw: string[]) => void;
  /** Called as each response ends, with its status (e.g. to count responses per second). */
  onResponse?: (statusCode: number) => void;
}

/** autocannon's client emits the HTTP parser's info ({ headers: [name, value...] }), not what its typings say. */
function watchHeaders(client: autocannon.Client, onHeaders: (raw: string[]) => void): void {
  (client as unknown as NodeJS.EventEmitter).on('headers', (info: { headers?: string[] }) => onHeaders(info.headers ?? []));
}

export async function runAutocannon(opts: AutocannonOptions): Promise<LoadSlice> {
  const specs = Array.isArray(opts.request) ? opts.request : [opts.request];
  const first = specs[0];
  if (!first) throw new Error('runAutocannon: no request');
  const verify = specs.length === 1 ? first.verify : undefined;
  const latencies = new Samples();
  const statusCodes: Record<string, number> = {};
  let completed = 0;
  let non2xx = 0;

  const started = process.hrtime.bigint();
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(
      {
        url: `${first.origin}${first.path}`,
        method: first.method,
        headers: first.headers,
        ...(first.body !== undefined ? { body: first.body } : {}),
        ...(specs.length > 1
          ? { requests: specs.map((s) => ({ method: s.method, path: s.path, headers: s.headers, ...(s.body !== undefined ? { body: s.body } : {}) })) }
          : {}),
        connections: opts.connections,
        duration: opts.durationS,
        timeout: opts.timeoutS ?? 10,
        ...(opts.overallRate ? { overallRate: opts.overallRate } : {}),
        ...(verify ? { verifyBody: (body: unknown) => verify(String(body)) } : {}),
        ...(opts.onHeaders ? { setupClient: (client: autocannon.Client) => watchHeaders(client, opts.onHeaders as (raw: string[]) => void) } : {}),
      },
      (err, res) => (err ? reject(err) : resolve(res)),
    );
    // (client, statusCode, resBytes, responseTime ms as a float from process.hrtime)
    instance.on('response', (_client: unknown, statusCode: number, _bytes: number, responseTime: number) => {
      completed++;
      opts.onResponse?.(statusCode);
      statusCodes[statusCode] = (statusCodes[statusCode] ?? 0) + 1;
      if (statusCode >= 200 && statusCode < 300) latencies.push(responseTime);
      else non2xx++;
    });
  });
  const elapsedS = Number(process.hrtime.bigint() - started) / 1e9;

  return {
    driver: 'autocannon',
    ...(opts.overallRate ? { targetRate: opts.overallRate } : {}),
    connections: opts.connections,
    elapsedS,
    sent: (result.requests as { sent?: number }).sent ?? completed,
    completed,
    answered: completed,
    statusCodes,
    non2xx,
    // autocannon counts timeouts among its errors.
    errors: result.errors - result.timeouts,
    timeouts: result.timeouts,
    invalid: (result as autocannon.Result & { mismatches?: number }).mismatches ?? 0,
    latency: latencies.values(),
  };
}
