/**
 * Idempotency-Key in distributed mode: two gateways sharing PostgreSQL (and Redis). A key used on
 * one is replayed by the other, and duplicates sent to both at once run once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RawConfig } from '../../src/config/schema.js';
import type { SimServer } from '../../src/providers/simulated/server.js';
import { FAST_MODELS, type TestGateway, auth, hello, httpSimConfig, postJson, startGateway, startPeer, startSim } from '../helpers/gateway.js';
import { distributedStorage, dropDistributed, requireService, uniqueName } from '../helpers/services.js';

const redis = await requireService('redis');
const pg = await requireService('postgres');

describe.skipIf(!redis || !pg)('Idempotency-Key across gateways sharing PostgreSQL', () => {
  const schema = uniqueName('tg_idem');
  let sim: SimServer;
  let a: TestGateway;
  let b: PeerGateway;
  let bUrl: string;

  beforeAll(async () => {
    sim = await startSim({ ...FAST_MODELS, 'sim-slow': { ...FAST_MODELS['sim-small']!, ttftMs: { median: 400, p95: 400 } } });
    const raw: RawConfig = httpSimConfig(
      { up: sim },
      { chat: { deployments: [{ provider: 'up', model: 'sim-small' }] }, slow: { deployments: [{ provider: 'up', model: 'sim-slow' }] } },
      { storage: distributedStorage(schema) },
    );
    a = await startGateway(raw);
    b = await startPeer(raw);
    bUrl = b.url;
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
    await sim?.close();
    await dropDistributed(schema);
  });

  const post = (url: string, model: string, key: string) =>
    postJson(`${url}/v1/chat/completions`, hello(model), { ...auth(a.apiKey), 'idempotency-key': key });

  it('replays on one gateway the answer the other gave', async () => {
    const ran = sim.engine.stats().total;
    const first = await post(a.url, 'chat', 'shared-1');
    const again = await post(bUrl, 'chat', 'shared-1');
    expect(again.status).toBe(200);
    expect(again.headers.get('x-tollgate-idempotent-replay')).toBe('true');
    expect(again.body).toEqual(first.body);
    expect(again.headers.get('x-request-id')).toBe(first.headers.get('x-request-id'));
    expect(sim.engine.stats().total - ran).toBe(1);
  });

  it('runs duplicates sent to both gateways at once only once', async () => {
    const ran = sim.engine.stats().total;
    const results = await Promise.all([post(a.url, 'slow', 'shared-2'), post(bUrl, 'slow', 'shared-2'), post(a.url, 'slow', 'shared-2')]);
    const executed = results.filter((r) => r.status === 200 && r.headers.get('x-tollgate-idempotent-replay') === null);
    expect(executed).toHaveLength(1);
    for (const r of results) if (r !== executed[0]) expect([409, 200]).toContain(r.status);
    expect(sim.engine.stats().total - ran).toBe(1);
  });
});
