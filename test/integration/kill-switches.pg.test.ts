/**
 * Kill switches in distributed mode: two gateways sharing PostgreSQL (and Redis). A switch made
 * through one gateway's admin API refuses requests on the other, and lifting it there restores
 * service. (That the change bus, not the poll, carries it is shown by change-bus.redis.test.ts;
 * how fast it arrives is a latency, which no test times.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RawConfig } from '../../src/config/schema.js';
import type { SimServer } from '../../src/providers/simulated/server.js';
import { type PeerGateway, type TestGateway, auth, hello, httpSimConfig, postJson, startGateway, startPeer, startSim } from '../helpers/gateway.js';
import { distributedStorage, dropDistributed, requireService, uniqueName } from '../helpers/services.js';

const redis = await requireService('redis');
const pg = await requireService('postgres');

describe.skipIf(!redis || !pg)('kill switches across gateways sharing PostgreSQL', () => {
  const schema = uniqueName('tg_kill');
  let sim: SimServer;
  let a: TestGateway;
  let b: PeerGateway;
  let bUrl: string;

  beforeAll(async () => {
    sim = await startSim();
    const raw: RawConfig = httpSimConfig(
      { up: sim },
      { 'sim-small': { deployments: [{ provider: 'up' }] } },
      { storage: distributedStorage(schema) },
    );
    a = await startGateway(raw);
    // The second process: same PostgreSQL schema and Redis prefix, its own local folder.
    b = await startPeer(raw);
    bUrl = b.url;
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
    await sim?.close();
    await dropDistributed(schema);
  });

  const admin = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${a.url}/admin/v1${path}`, {
      method,
      headers: { ...auth(a.adminKey), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: res.status, body: (await res.json()) as any };
  };
  const askB = async () => {
    const res = await postJson(`${bUrl}/v1/chat/completions`, hello('sim-small', { max_tokens: 5 }), auth(a.apiKey));
    return res.status === 200 ? 200 : `${res.status} ${res.body.error.code}: ${res.body.error.message}`;
  };

  it('a switch made through gateway A applies on gateway B, and is lifted there too', async () => {
    expect(await askB()).toBe(200);
    const sw = await admin('POST', '/kill-switches', { scope: 'model', target: 'sim-small', reason: 'bad deploy' });
    expect(sw.status).toBe(201);
    await expect
      .poll(askB, { timeout: 10_000, interval: 5 })
      .toBe(`503 model_disabled: The model 'sim-small' is disabled by a kill switch (${sw.body.id}): bad deploy`);
    expect((await admin('DELETE', `/kill-switches/${sw.body.id}`)).status).toBe(200);
    await expect.poll(askB, { timeout: 10_000, interval: 5 }).toBe(200);

    const global = await admin('POST', '/kill-switches', { scope: 'global', reason: 'all stop' });
    await expect.poll(askB, { timeout: 10_000, interval: 5 }).toMatch(/^403 access_disabled: All requests are disabled/);
    await admin('DELETE', `/kill-switches/${global.body.id}`);
    await expect.poll(askB, { timeout: 10_000, interval: 5 }).toBe(200);
  });
});
