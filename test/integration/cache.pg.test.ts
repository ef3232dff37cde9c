/**
 * The cache in distributed mode: two gateways sharing Redis (and PostgreSQL) share exact and
 * semantic entries, and an invalidation through one reaches the other.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { RawConfig } from '../../src/config/schema.js';
import type { SimServer } from '../../src/providers/simulated/server.js';
import { type PeerGateway, type TestGateway, auth, httpSimConfig, postJson, postStream, startGateway, startPeer, startSim } from '../helpers/gateway.js';
import { distributedStorage, dropDistributed, requireService, uniqueName } from '../helpers/services.js';

const redis = await requireService('redis');
const pg = await requireService('postgres');

const ask = (content: string) => ({ model: 'sim-small', temperature: 0, messages: [{ role: 'user', content }] });

describe.skipIf(!redis || !pg)('cache shared by two gateways through Redis', () => {
  const schema = uniqueName('tg_cache');
  let sim: SimServer;
  let a: TestGateway;
  let b: PeerGateway;
  let bUrl: string;

  beforeAll(async () => {
    sim = await startSim();
    const raw: RawConfig = httpSimConfig({ up: sim }, { 'sim-small': { deployments: [{ provider: 'up' }], price: { input: 1, output: 2 } } }, { storage: distributedStorage(schema) });
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

  /** A's requests have settled and their answers are written to Redis (stored in the background). */
  const storedByA = async () => {
    await a.settled();
    await a.gateway.cache.idle();
  };

  it('an answer cached through one gateway is an exact hit on the other', async () => {
    const body = ask('Which port does Redis listen on by default?');
    const first = await postJson(`${a.url}/v1/chat/completions`, body, auth(a.apiKey));
    expect(first.headers.get('x-tollgate-cache')).toBe('miss');
    await storedByA();
    const hit = await postJson(`${bUrl}/v1/chat/completions`, body, auth(a.apiKey));
    expect(hit.headers.get('x-tollgate-cache')).toBe('hit');
    expect(hit.body.choices).toEqual(first.body.choices);
    const stream = await postStream(`${bUrl}/v1/chat/completions`, { ...body, stream: true }, auth(a.apiKey));
    expect(stream.headers.get('x-tollgate-cache')).toBe('hit');
    expect(stream.sawDone).toBe(true);
    expect(sim.engine.stats().total).toBe(1);
  });

  it('a semantic entry stored through one gateway answers a paraphrase on the other', async () => {
    const indexedOnB = b.gateway.cache.semantic!.size;
    await postJson(`${a.url}/v1/chat/completions`, ask('How do I rotate my API key safely?'), auth(a.apiKey));
    await storedByA();
    // B learns of the entry over Redis pub/sub and indexes it.
    await vi.waitFor(() => expect(b.gateway.cache.semantic!.size).toBe(indexedOnB + 1), { timeout: 10_000, interval: 5 });
    const paraphrase = ask('How can I safely rotate my API key?');
    const calls = sim.engine.stats().total;
    expect((await postJson(`${bUrl}/v1/chat/completions`, paraphrase, auth(a.apiKey))).headers.get('x-tollgate-cache')).toBe('semantic');
    expect(sim.engine.stats().total).toBe(calls); // answered without upstream
  });

  it('an invalidation through one gateway empties the cache of both', async () => {
    const body = ask('What does HTTP status 418 mean?');
    await postJson(`${a.url}/v1/chat/completions`, body, auth(a.apiKey));
    await storedByA();
    const res = await fetch(`${a.url}/admin/v1/cache/invalidate`, {
      method: 'POST',
      headers: { ...auth(a.adminKey), 'content-type': 'application/json' },
      body: JSON.stringify({ all: true }),
    });
    expect(res.status).toBe(200);
    const removed = (await res.json()) as { exact_removed: number; semantic_removed: number };
    expect(removed.exact_removed).toBeGreaterThan(0);
    expect(removed.semantic_removed).toBeGreaterThan(0);
    const again = await postJson(`${bUrl}/v1/chat/completions`, ask('What does the HTTP status 418 mean?'), auth(a.apiKey));
    expect(again.headers.get('x-tollgate-cache')).toBe('miss');
  });
});
