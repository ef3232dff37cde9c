/**
 * Feature flags across processes: a flag created through one gateway's admin API takes effect on
 * another gateway sharing PostgreSQL and Redis through the change bus (Redis pub/sub), and so
 * does turning it off. The other gateway polls its flags once an hour: only the bus can bring
 * the change within the test. (How fast it arrives is a latency, not something a test times.)
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
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
        // Polling far slower than any wait here: only the change bus can bring a change.
        flags: { refreshMs: 3_600_000 },
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
  /** Waits until B routes to `want` (the change has reached it); the timeout only bounds a failure. */
  const reaches = (want: string) => vi.waitFor(async () => expect(await modelOnB()).toBe(want), { timeout: 10_000, interval: 5 });
  const admin = (method: string, path: string, body?: unknown) =>
    fetch(`${a.url}/admin/v1${path}`, {
      method,
      headers: { ...auth(a.adminKey), 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });

  it('a flag made on one gateway applies on the other over the change bus, and so does lifting it', async () => {
    expect(await modelOnB()).toBe('sim-small');
    expect((await admin('POST', '/flags', { name: 'go-large', effect: { route: 'auto', model: 'm-large' } })).status).toBe(201);
    await reaches('sim-large');
    expect((await admin('PATCH', '/flags/go-large', { enabled: false })).status).toBe(200);
    await reaches('sim-small');
  });
});
