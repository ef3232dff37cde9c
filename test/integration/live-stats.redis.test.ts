/**
 * Live statistics across processes: two gateways on shared Redis and PostgreSQL each see the
 * other's traffic (buckets exchanged over the change bus), so either one's dashboard shows the cluster.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimServer } from '../../src/providers/simulated/server.js';
import { type PeerGateway, type TestGateway, auth, hello, httpSimConfig, postJson, startGateway, startPeer, startSim } from '../helpers/gateway.js';
import { distributedStorage, dropDistributed, requireService, uniqueName } from '../helpers/services.js';

const redis = await requireService('redis');
const pg = await requireService('postgres');

describe.skipIf(!redis || !pg)('live stats over two processes', () => {
  const name = uniqueName('tg_live');
  let sim: SimServer;
  let a: TestGateway;
  let b: PeerGateway;

  beforeAll(async () => {
    sim = await startSim();
    const raw = httpSimConfig({ up: sim }, { 'sim-small': { deployments: [{ provider: 'up' }], price: { input: 1, output: 2 } } }, { storage: distributedStorage(name) });
    a = await startGateway(raw);
    b = await startPeer(raw);
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
    await sim?.close();
    await dropDistributed(name);
  });

  it('each process counts the whole cluster', async () => {
    for (let i = 0; i < 3; i++) expect((await postJson(`${a.url}/v1/chat/completions`, hello(), auth(a.apiKey))).status).toBe(200);
    for (let i = 0; i < 5; i++) expect((await postJson(`${b.url}/v1/chat/completions`, hello('nope'), auth(a.apiKey))).status).toBe(404);
    for (const g of [a.gateway, b.gateway]) {
      await expect.poll(() => g.liveStats.snapshot(120).requests, { timeout: 10_000, interval: 250 }).toBe(8);
      const snap = g.liveStats.snapshot(120);
      expect(snap.nodes).toBe(2);
      expect(snap.failures).toBe(5);
      expect(snap.models).toEqual({ 'sim-small': 3 });
    }
  }, 30_000);
});
