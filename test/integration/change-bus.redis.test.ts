/**
 * Changes made through one gateway reach the others through Redis pub/sub, not after the caches'
 * own expiry: here the auth cache lives an hour and kill switches are polled every hour, so only
 * the bus can explain a change seen at all within the test (each wait gives up after 10 s).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RawConfig } from '../../src/config/schema.js';
import type { SimServer } from '../../src/providers/simulated/server.js';
import { type TestGateway, FAST_MODELS, auth, hello, httpSimConfig, postJson, startGateway, startSim } from '../helpers/gateway.js';
import { distributedStorage, dropDistributed, requireService, uniqueName } from '../helpers/services.js';

const redis = await requireService('redis');
const pg = await requireService('postgres');

describe.skipIf(!redis || !pg)('change bus: Redis pub/sub between gateways', () => {
  const schema = uniqueName('tg_bus');
  let sim: SimServer;
  let a: TestGateway;
  let b: TestGateway;

  beforeAll(async () => {
    sim = await startSim(FAST_MODELS);
    const config: RawConfig = httpSimConfig(
      { up: sim },
      { 'sim-small': { deployments: [{ provider: 'up' }] } },
      {
        storage: distributedStorage(schema),
        auth: { cacheTtlMs: 3_600_000 },
        killSwitches: { refreshMs: 3_600_000 },
      },
    );
    a = await startGateway(config);
    b = await startGateway({ ...config, auth: { cacheTtlMs: 3_600_000, bootstrap: false } });
  });
  afterAll(async () => {
    await b?.gateway.close();
    await a?.close();
    await sim?.close();
    await dropDistributed(schema);
  });

  const admin = (gw: TestGateway, method: string, path: string, body?: unknown) =>
    fetch(`${gw.url}/admin/v1${path}`, {
      method,
      headers: { ...auth(a.adminKey), ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    }).then(async (r) => ({ status: r.status, body: (await r.json()) as any }));
  const chat = (gw: TestGateway, key: string) => postJson(`${gw.url}/v1/chat/completions`, hello('sim-small', { max_tokens: 5 }), auth(key));

  it('a key revoked through gateway A is refused by gateway B at once, although B had it cached', async () => {
    const created = await admin(a, 'POST', '/keys', { tenant_id: a.tenantId });
    expect((await chat(b, created.body.key)).status).toBe(200); // B caches it for an hour
    await admin(a, 'DELETE', `/keys/${created.body.id}`);
    await expect.poll(async () => (await chat(b, created.body.key)).status, { timeout: 10_000, interval: 5 }).toBe(401);
  });

  it('a kill switch created through A applies on B over the bus, and lifting it too', async () => {
    const key = (await admin(a, 'POST', '/keys', { tenant_id: a.tenantId })).body.key as string;
    const ks = await admin(a, 'POST', '/kill-switches', { scope: 'model', target: 'sim-small', reason: 'bus test' });
    expect(ks.status).toBe(201);
    await expect.poll(async () => (await chat(b, key)).status, { timeout: 10_000, interval: 5 }).toBe(503);
    await admin(a, 'DELETE', `/kill-switches/${ks.body.id}`);
    await expect.poll(async () => (await chat(b, key)).status, { timeout: 10_000, interval: 5 }).toBe(200);
  });
});
