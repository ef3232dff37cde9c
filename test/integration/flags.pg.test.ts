/**
 * Feature flags across processes: a flag created through one gateway's admin API takes effect on
 * another gateway sharing PostgreSQL and Redis within a second (Redis pub/sub), and so does
 * turning it off.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RawConfig } from '../../src/config/schema.js';
import type { SimServer } from '../../src/providers/simulated/server.js';
import { type PeerGateway, type TestGateway, auth, httpSimConfig, postJson, startGateway, startPeer, startSim } from '../helpers/gateway.js';
import { distributedStorage, dropDistributed, requireService, uniqueName } from '../helpers/services.js';

const redis = await requireService('redis');
const pg = await requireService('postgres');

describe.skipIf(!redis || !pg)('feature flags across gateways', () => {
  const schema = uniqueName('tg_flags');
  let sim: SimServer;
  let a: TestGateway;
  let b: PeerGateway;

  beforeAll(async () => {
    sim = await startSim();
    const raw: RawConfig = httpSimConfig(
      { up: sim },
      {
        'm-small': { deployments: [{ provider: 'up', model: 'sim-small' }] },
        'm-large': { deployments: [{ provider: 'up', model: 'sim-large' }] },
      },
      {
        storage: distributedStorage(schema),
        routes: { auto: { tiers: { small: ['m-small'], large: ['m-large'] }, classifier: 'none' } },
        // Polling far slower than the bound checked: only the change bus can meet it.
        flags: { refreshMs: 60_000 },
        cache: { enabled: false },
      },
    );
    a = await startGateway(raw);
    b = await startPeer(raw);
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
    await sim?.close();
    await dropDistributed(schema);
  });

  const modelOnB = async () => (await postJson(`${b.url}/v1/chat/completions`, { model: 'auto', messages: [{ role: 'user', content: 'hi' }] }, auth(a.apiKey))).headers.get('x-tollgate-model');
  const within = async (ms: number, want: string) => {
    const start = Date.now();
    while (Date.now() - start < ms) {
      if ((await modelOnB()) === want) return Date.now() - start;
      await new Promise((r) => setTimeout(r, 25));
    }
    return Number.POSITIVE_INFINITY;
  };
  const admin = (method: string, path: string, body?: unknown) =>
    fetch(`${a.url}/admin/v1${path}`, {
      method,
      headers: { ...auth(a.adminKey), 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });

  it('a flag made on one gateway applies on the other within a second, and so does lifting it', async () => {
    expect(await modelOnB()).toBe('sim-small');
    expect((await admin('POST', '/flags', { name: 'go-large', effect: { route: 'auto', model: 'm-large' } })).status).toBe(201);
    expect(await within(1_000, 'sim-large')).toBeLessThan(1_000);
    expect((await admin('PATCH', '/flags/go-large', { enabled: false })).status).toBe(200);
    expect(await within(1_000, 'sim-small')).toBeLessThan(1_000);
  });
});
