/**
 * A slow, stalled or unreachable PostgreSQL must not freeze keys already authenticated (issue 15,
 * item 2). The gateway reaches PostgreSQL through a loopback TCP proxy (the shared server keeps
 * running) that refuses connections, pauses them (a partition: nothing moves either way) or
 * drops every byte (a broken middlebox); and in a fourth case another connection holds an
 * ACCESS EXCLUSIVE lock on the keys table. In each:
 *  - a known key is answered while the fault is still on (the requests resolve before the heal);
 *  - a key the gateway has not seen gets 503 storage_unavailable, not a hang;
 *  - /readyz answers 503 naming postgres slow or down; /metrics answers;
 *  - after the heal, a key created then authenticates and the spooled usage reaches the ledger.
 * Nothing here waits for time: each step waits for a response or polls a condition.
 */
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimServer } from '../../src/providers/simulated/server.js';
import { type TestGateway, FAST_MODELS, auth, hello, httpSimConfig, postJson, startGateway, startSim } from '../helpers/gateway.js';
import { PG_URL, dropDistributed, distributedStorage, requireService, uniqueName } from '../helpers/services.js';
import { type ProxyMode, type TcpProxy, startTcpProxy } from '../helpers/tcp-proxy.js';

const pg = await requireService('postgres');
const redis = await requireService('redis');

describe.skipIf(!pg || !redis)('PostgreSQL refused, partitioned, dropping bytes or locked: known keys keep working', () => {
  let sim: SimServer;
  let proxy: TcpProxy;
  let gw: TestGateway;
  const schema = uniqueName('tg_pgfault');

  beforeAll(async () => {
    sim = await startSim(FAST_MODELS);
    const target = new URL(PG_URL);
    proxy = await startTcpProxy(Number(target.port || 5432), target.hostname);
    const viaProxy = new URL(PG_URL);
    viaProxy.hostname = '127.0.0.1';
    viaProxy.port = String(proxy.port);
    gw = await startGateway(
      httpSimConfig(
        { up: sim },
        { 'sim-small': { deployments: [{ provider: 'up' }], price: { input: 1, output: 2 } } },
        {
          storage: {
            ...distributedStorage(schema),
            postgresUrl: viaProxy.toString(),
            // Small bounds so the test is quick; the defaults are 500 / 5000 / 2000.
            postgresQueryTimeoutMs: 500,
            postgresStatementTimeoutMs: 2_000,
            postgresConnectTimeoutMs: 1_000,
          },
          // Every cached key is past its TTL within the test: the stale-while-revalidate path.
          auth: { cacheTtlMs: 50 },
        },
      ),
    );
  });
  afterAll(async () => {
    await proxy?.setMode('pass').catch(() => undefined);
    await gw?.close();
    await sim?.close();
    await proxy?.close();
    await dropDistributed(schema);
  });

  const chat = (key: string) => postJson(`${gw.url}/v1/chat/completions`, hello('sim-small', { max_tokens: 8 }), auth(key));
  const newKey = async (): Promise<string> => {
    const res = await postJson(`${gw.url}/admin/v1/keys`, { tenant_id: gw.tenantId }, auth(gw.adminKey));
    if (res.status !== 200 && res.status !== 201) throw new Error(`creating a key: ${res.status} ${JSON.stringify(res.body)}`);
    return (res.body as { key: string }).key;
  };
  const readyz = async () => {
    const res = await fetch(`${gw.url}/readyz`);
    return { status: res.status, body: (await res.json()) as { checks: Record<string, string> } };
  };

  /** Known and unknown keys, /readyz and /metrics while `fault` is on; then recovery after `heal`. */
  async function duringFault(fault: () => Promise<void>, heal: () => Promise<void>, readiness: RegExp): Promise<void> {
    const known = await newKey();
    const unseen = await newKey(); // exists, never used: not in the gateway's cache
    expect((await chat(known)).status).toBe(200);
    const served: string[] = [];
    await fault();
    let healed = false;
    try {
      // Each of these resolves while the fault is on (the heal comes after them). 50 of them, one
      // after the other: more than the pool's connections, so each of those fails several times.
      for (let i = 0; i < 50; i++) {
        const res = await chat(known);
        expect(res.status).toBe(200);
        served.push(res.headers.get('x-request-id')!);
      }
      const refused = await chat(unseen);
      expect(refused.status).toBe(503);
      expect(refused.body.error.code).toBe('storage_unavailable');
      expect(refused.headers.get('retry-after')).toBe('1');
      const ready = await readyz();
      expect(ready.status).toBe(503);
      expect(ready.body.checks['postgres']).toMatch(readiness);
      expect(ready.body.checks['redis']).toBe('ok');
      const metrics = await fetch(`${gw.url}/metrics`);
      expect(metrics.status).toBe(200);
      expect(await metrics.text()).toContain('tollgate_requests_total');
      await gw.gateway.settled(); // the served requests' usage is recorded (spooled, at least)
      healed = true;
      await heal();
    } finally {
      if (!healed) await heal(); // a failed assertion still leaves PostgreSQL reachable for the next case
    }

    // A key created after the heal authenticates (and so does the one refused during the fault).
    await expect
      .poll(async () => (await chat(await newKey().catch(() => known))).status === 200 && (await chat(unseen)).status, { timeout: 20_000, interval: 100 })
      .toBe(200);
    await expect.poll(async () => (await readyz()).status, { timeout: 20_000, interval: 100 }).toBe(200);
    // The usage spooled during the fault reaches the ledger.
    await expect.poll(() => gw.gateway.ledger.pending, { timeout: 20_000, interval: 100 }).toBe(0);
    for (const id of served) expect(await gw.gateway.storage.ledger.get(id)).toMatchObject({ requestId: id, status: 200 });
  }

  const proxyFault = (mode: ProxyMode) => [() => proxy.setMode(mode), () => proxy.setMode('pass')] as const;

  it('connection refused (PostgreSQL down)', async () => {
    await duringFault(...proxyFault('refuse'), /^(down|slow): /);
  }, 60_000);

  it('a partition (connections open, nothing comes back)', async () => {
    await duringFault(...proxyFault('pause'), /^slow: no answer within 500 ms/);
  }, 60_000);

  it('a middlebox that drops every byte', async () => {
    await duringFault(...proxyFault('drop'), /^slow: no answer within 500 ms/);
  }, 60_000);

  it('a lock held on the keys table', async () => {
    const locker = postgres(PG_URL, { max: 1, onnotice: () => undefined });
    let release = () => {};
    let done: Promise<unknown> = Promise.resolve();
    try {
      await duringFault(
        async () => {
          let locked = () => {};
          const held = new Promise<void>((resolve) => (locked = resolve));
          done = locker.begin(async (tx) => {
            await tx.unsafe(`LOCK TABLE "${schema}".api_keys IN ACCESS EXCLUSIVE MODE`);
            locked();
            await new Promise<void>((resolve) => (release = resolve));
          });
          await held;
        },
        async () => {
          release();
          await done;
        },
        /^slow: no answer within 500 ms/,
      );
    } finally {
      release();
      await done.catch(() => undefined);
      await locker.end();
    }
  }, 60_000);
});
