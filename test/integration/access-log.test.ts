/**
 * logging.access through a real gateway: which requests get an access line (`msg: "request"`).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { buildConfig } from '../../src/config/loader.js';
import { type Gateway, createGateway } from '../../src/main.js';
import { FAST_MODELS } from '../helpers/gateway.js';

let open: { gateway: Gateway; dir: string } | undefined;
afterEach(async () => {
  await open?.gateway.close();
  if (open) rmSync(open.dir, { recursive: true, force: true });
  open = undefined;
});

async function gatewayWith(access: Record<string, unknown>) {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-access-'));
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'info' }, new Writable({ write: (chunk, _e, cb) => (lines.push(JSON.parse(String(chunk)) as Record<string, unknown>), cb()) }));
  const config = buildConfig({
    storage: { kind: 'embedded', dir },
    logging: { level: 'info', access },
    providers: { sim: { kind: 'simulated', models: FAST_MODELS } },
    models: { 'sim-small': { deployments: [{ provider: 'sim', model: 'sim-small' }] } },
  });
  const gateway = await createGateway(config, { logger });
  open = { gateway, dir };
  const boot = await gateway.bootstrap();
  const ask = async (key: string) =>
    (
      await gateway.app.inject({
        method: 'POST',
        url: '/v1/chat/completions',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        payload: { model: 'sim-small', messages: [{ role: 'user', content: 'hi' }] },
      })
    ).statusCode;
  const requests = () => lines.filter((l) => l.msg === 'request').map((l) => l.status);
  return { gateway, key: boot?.demoKey.secret ?? '', ask, requests };
}

describe('logging.access', () => {
  it('all (default): a line for every request', async () => {
    const g = await gatewayWith({});
    expect([await g.ask(g.key), await g.ask('tg-wrong')]).toEqual([200, 401]);
    await g.gateway.settled();
    expect(g.requests()).toEqual([200, 401]);
  });

  it('errors-and-slow: the failed request only', async () => {
    const g = await gatewayWith({ mode: 'errors-and-slow' });
    expect([await g.ask(g.key), await g.ask('tg-wrong')]).toEqual([200, 401]);
    await g.gateway.settled();
    expect(g.requests()).toEqual([401]);
  });

  it('off: no access line, the request still billed', async () => {
    const g = await gatewayWith({ mode: 'off' });
    expect(await g.ask(g.key)).toBe(200);
    await g.gateway.settled();
    await g.gateway.ledger.flush();
    expect(g.requests()).toEqual([]);
    const usage = await g.gateway.storage.ledger.aggregate({ from: 0, to: Date.now() + 60_000, groupBy: [] });
    expect(usage.reduce((n, row) => n + row.requests, 0)).toBe(1);
  });
});
