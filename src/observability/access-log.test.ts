import { Writable } from 'node:stream';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
// @ts-ignore TS6059: test helpers live outside tsconfig's rootDir (src); the import is type-checked all the same.
import { chatContext } from '../../test/helpers/context.js';
import { configSchema } from '../config/schema.js';
import { type AccessLogConfig, accessLog } from './access-log.js';

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'info' }, new Writable({ write: (chunk, _e, cb) => (lines.push(JSON.parse(String(chunk)) as Record<string, unknown>), cb()) }));
  return { log, lines };
}

/** Requests as settle sees them: ok and fast, ok but slow, a 4xx, a 5xx, a client that left. */
const REQUESTS = [
  { status: 200, latencyMs: 3 },
  { status: 200, latencyMs: 6_000 },
  { status: 429, latencyMs: 1 },
  { status: 502, latencyMs: 40 },
  { status: 499, latencyMs: 10 },
];

function logged(cfg: AccessLogConfig, random?: () => number): Array<Record<string, unknown>> {
  const { log, lines } = capture();
  const step = accessLog(log, cfg, random);
  for (const [i, r] of REQUESTS.entries()) step?.(chatContext({ id: `req_${i}` }), r);
  return lines;
}

describe('the access log', () => {
  it('by default writes one line per request: info, warn for a 5xx the gateway answered', () => {
    const cfg = configSchema.parse({}).logging.access;
    expect(cfg).toEqual({ mode: 'all', sample: 1, slowMs: 5_000 });
    const lines = logged(cfg);
    expect(lines.map((l) => [l.reqId, l.status, l.level, l.msg])).toEqual([
      ['req_0', 200, 30, 'request'],
      ['req_1', 200, 30, 'request'],
      ['req_2', 429, 30, 'request'],
      ['req_3', 502, 40, 'request'],
      ['req_4', 499, 30, 'request'],
    ]);
  });

  it('errors-and-slow: only failed requests (status >= 400, 499 included) and slow ones', () => {
    expect(logged({ mode: 'errors-and-slow', sample: 1, slowMs: 5_000 }).map((l) => l.reqId)).toEqual(['req_1', 'req_2', 'req_3', 'req_4']);
    expect(logged({ mode: 'errors-and-slow', sample: 1, slowMs: 2 }).map((l) => l.reqId)).toEqual(['req_0', 'req_1', 'req_2', 'req_3', 'req_4']); // 3 ms is slow now
  });

  it('sampling keeps a share of the ok, fast requests and every error and slow one', () => {
    const draws = [0.05, 0.5]; // the first fast ok request is kept (0.05 < 0.1), the draw is made for it only
    let i = 0;
    const lines = logged({ mode: 'all', sample: 0.1, slowMs: 5_000 }, () => draws[i++] ?? 1);
    expect(lines.map((l) => l.reqId)).toEqual(['req_0', 'req_1', 'req_2', 'req_3', 'req_4']);
    expect(i).toBe(1);
    expect(logged({ mode: 'all', sample: 0, slowMs: 5_000 }, () => 0).map((l) => l.reqId)).toEqual(['req_1', 'req_2', 'req_3', 'req_4']);
  });

  it('off: no settle step at all', () => {
    expect(accessLog(capture().log, { mode: 'off', sample: 1, slowMs: 5_000 })).toBeUndefined();
  });

  it('refuses a sample outside 0..1 and an unknown mode, naming the field', () => {
    expect(() => configSchema.parse({ logging: { access: { sample: 2 } } })).toThrow(/sample/);
    expect(() => configSchema.parse({ logging: { access: { mode: 'some' } } })).toThrow(/mode/);
  });
});
