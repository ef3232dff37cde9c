/**
 * A budget counter lost with Redis is seeded anew from the ledger, and the ledger alone misses the
 * spend still in the gateways' spools (PostgreSQL could not take it). Two gateways share
 * PostgreSQL and Redis; PostgreSQL refuses the ledger's writes (a lock held on usage_events: the
 * writes wait or time out, reads go on) while both answer requests, then Redis loses every
 * counter. The next request reseeds the tenant's daily budget: it must count the ledger, the
 * seeding gateway's own spool, and the other gateway's spool (told over the change bus), exactly
 * what the ledger holds once the spools have drained. Before: the ledger only (an undercount that
 * could be overspent for the rest of the day).
 */
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RawConfig } from '../../src/config/schema.js';
import type { SimServer } from '../../src/providers/simulated/server.js';
import { type PeerGateway, type TestGateway, auth, hello, httpSimConfig, postJson, startGateway, startPeer, startSim } from '../helpers/gateway.js';
import { PG_URL, deleteRedisKeys, distributedStorage, dropDistributed, requireService, uniqueName } from '../helpers/services.js';
import { type TcpProxy, startTcpProxy } from '../helpers/tcp-proxy.js';

const redis = await requireService('redis');
const pg = await requireService('postgres');

describe.skipIf(!redis || !pg)('budget counters reseeded while usage is still spooled', () => {
  const schema = uniqueName('tg_reseed');
  let sim: SimServer;
  let a: TestGateway;
  let b: PeerGateway;

  beforeAll(async () => {
    sim = await startSim();
    const raw: RawConfig = httpSimConfig(
      { up: sim },
      { 'sim-small': { deployments: [{ provider: 'up' }], price: { input: 1, output: 2 } } },
      { storage: distributedStorage(schema), tiers: { standard: { budgets: { tenant: { dailyUsd: 100 } } } }, cache: { enabled: false } },
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

  /** Asks through the gateway at `url`; resolves with the answer's cost, pico-dollars. */
  const ask = async (url: string, i: number): Promise<number> => {
    const res = await postJson(`${url}/v1/chat/completions`, hello('sim-small', { max_tokens: 10, seed: i, messages: [{ role: 'user', content: `question ${i}` }] }), auth(a.apiKey));
    expect(res.status).toBe(200);
    return Math.round(Number(res.headers.get('x-tollgate-cost-usd')) * 1e12);
  };
  const budgetKey = () => `budget:tenant:${a.tenantId}:day:${new Date().toISOString().slice(0, 10)}`;

  it('counts the ledger, its own spool and the other gateway spool', async () => {
    // Flushed just before the seed, these six may be counted twice (the margins err that way).
    let flushedJustBefore = 0;
    for (let i = 0; i < 3; i++) flushedJustBefore += await ask(a.url, i);
    for (let i = 3; i < 6; i++) flushedJustBefore += await ask(b.url, i);
    await a.settled();
    await b.gateway.settled();
    await b.gateway.ledger.flush();

    const sql = postgres(PG_URL, { max: 1, onnotice: () => undefined });
    let unlock!: () => void;
    let locked!: () => void;
    const isLocked = new Promise<void>((resolve) => (locked = resolve));
    const held = sql.begin(async (tx) => {
      await tx.unsafe(`LOCK TABLE "${schema}".usage_events IN EXCLUSIVE MODE`); // writes wait, reads go on
      locked();
      await new Promise<void>((resolve) => (unlock = resolve));
    });
    try {
      await isLocked;
      for (let i = 6; i < 9; i++) await ask(a.url, i);
      for (let i = 9; i < 12; i++) await ask(b.url, i);
      await a.gateway.settled(); // answered and settled; their events are in the spools only
      await b.gateway.settled();
      expect(a.gateway.ledger.pending + b.gateway.ledger.pending).toBeGreaterThanOrEqual(6);

      await deleteRedisKeys(`${schema}:`); // Redis restarted empty
      await ask(a.url, 12); // reseeds the tenant's daily counter
      await a.gateway.settled();
    } finally {
      unlock();
      await held;
      await sql.end();
    }
    await a.settled();
    await b.gateway.ledger.flush();
    const [row] = await a.gateway.storage.ledger.aggregate({ from: 0, to: Date.now() + 60_000, tenantId: a.tenantId, groupBy: [] });
    expect(row!.requests).toBe(13);
    // B adds its spool's share when told of the seed (pub/sub): wait for it. Never less than the
    // ledger; more by at most what A and B handed to the ledger just before the seed (the first
    // six answers, flushed within the margins of the seed's read, may be counted twice: the
    // documented error toward refusing early).
    await expect.poll(() => a.gateway.storage.counters.budgetUsed(budgetKey()), { timeout: 10_000, interval: 20 }).toBeGreaterThanOrEqual(row!.costPico);
    expect(await a.gateway.storage.counters.budgetUsed(budgetKey())).toBeLessThanOrEqual(row!.costPico + flushedJustBefore);
  });
});

describe.skipIf(!redis || !pg)('an empty Redis during a PostgreSQL cut', () => {
  const schema = uniqueName('tg_reseed_cut');
  let sim: SimServer;
  let proxy: TcpProxy;
  let gw: TestGateway;

  beforeAll(async () => {
    sim = await startSim();
    const target = new URL(PG_URL);
    proxy = await startTcpProxy(Number(target.port || 5432), target.hostname);
    const viaProxy = new URL(PG_URL);
    viaProxy.hostname = '127.0.0.1';
    viaProxy.port = String(proxy.port);
    gw = await startGateway(
      httpSimConfig(
        { up: sim },
        { 'sim-small': { deployments: [{ provider: 'up' }], price: { input: 1, output: 2 } } },
        { storage: { ...distributedStorage(schema), postgresUrl: viaProxy.toString() }, tiers: { standard: { budgets: { tenant: { dailyUsd: 100 } } } }, cache: { enabled: false } },
      ),
    );
  });
  afterAll(async () => {
    await gw?.close();
    await proxy?.close();
    await sim?.close();
    await dropDistributed(schema);
  });

  const ask = (i: number) => postJson(`${gw.url}/v1/chat/completions`, hello('sim-small', { max_tokens: 10, messages: [{ role: 'user', content: `cut question ${i}` }] }), auth(gw.apiKey));

  it('refuses budgeted requests at once while the counter cannot be reseeded, then reseeds it with the spooled spend', async () => {
    let before = 0;
    for (let i = 0; i < 3; i++) {
      const res = await ask(i);
      expect(res.status).toBe(200);
      before += Math.round(Number(res.headers.get('x-tollgate-cost-usd')) * 1e12);
    }
    await gw.settled();

    await proxy.setMode('refuse');
    let spooled = 0;
    for (let i = 3; i < 6; i++) {
      const res = await ask(i); // the key is known, the counter exists: answered, spooled
      expect(res.status).toBe(200);
      spooled += Math.round(Number(res.headers.get('x-tollgate-cost-usd')) * 1e12);
    }
    await gw.gateway.settled();
    await deleteRedisKeys(`${schema}:`); // Redis restarted empty
    const refused = await ask(6); // the counter must be reseeded from a ledger that cannot be read
    expect(refused.status).toBe(503);
    expect(refused.body.error.code).toBe('budget_unavailable');

    await proxy.setMode('pass');
    let after = 0;
    let n = 7;
    await expect
      .poll(
        async () => {
          const res = await ask(n++);
          if (res.status === 200) after += Math.round(Number(res.headers.get('x-tollgate-cost-usd')) * 1e12);
          return res.status;
        },
        { timeout: 15_000, interval: 100 },
      )
      .toBe(200);
    await gw.settled();
    const used = await gw.gateway.storage.counters.budgetUsed(`budget:tenant:${gw.tenantId}:day:${new Date().toISOString().slice(0, 10)}`);
    // The spend made before Redis emptied is all counted, whether the spool had drained by the
    // reseed or not; counted twice at most for what was flushed around the reseed's read.
    expect(used).toBeGreaterThanOrEqual(before + spooled + after);
    expect(used).toBeLessThanOrEqual(before + 2 * spooled + after + before);
  });
});
