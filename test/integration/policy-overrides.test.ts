/**
 * Limits and budgets overridden per tenant and per key at run time, through the admin API:
 * the tier gives the defaults, a tenant's policy overrides them for itself and its keys and
 * users, a key's policy for itself and its users. Changes apply at once in this process.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { SimServer } from '../../src/providers/simulated/server.js';
import { type TestGateway, auth, hello, httpSimConfig, postJson, startGateway, startSim } from '../helpers/gateway.js';

async function admin(gw: TestGateway, method: string, path: string, body?: unknown) {
  const res = await fetch(`${gw.url}/admin/v1${path}`, {
    method,
    headers: { ...auth(gw.adminKey), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, type: res.headers.get('content-type'), body: (await res.json()) as any };
}

describe('policy overrides per tenant and key', () => {
  let sim: SimServer;
  let gw: TestGateway;
  const chat = (key: string, extra: Record<string, unknown> = {}) =>
    postJson(`${gw.url}/v1/chat/completions`, hello('sim-small', { max_tokens: 30, ...extra }), auth(key));
  const newTenant = async (id: string) => (await admin(gw, 'POST', '/tenants', { id, name: id })).body;
  const newKey = async (tenantId: string) => (await admin(gw, 'POST', '/keys', { tenant_id: tenantId })).body as { id: string; key: string };

  beforeAll(async () => {
    // Rate-limit buckets refill by Date.now(): a fake Date (real timers and sockets) that only the
    // tests move, so no bucket refills between two requests unless a test says so.
    vi.useFakeTimers({ toFake: ['Date'] });
    sim = await startSim();
    gw = await startGateway({
      ...httpSimConfig(
        { up: sim },
        // ~$0.005 to ~$0.01 a request: a $0.02 budget is spent after a few.
        { 'sim-small': { deployments: [{ provider: 'up' }], price: { input: 100, output: 200 } } },
        {
          tiers: {
            standard: { limits: { tenant: { requestsPerMinute: 100 } } },
            premium: { budgets: { key: { dailyUsd: 0.02 } } },
          },
        },
      ),
      auth: { cacheTtlMs: 60_000 }, // only the admin API's invalidation can explain a change seen at once
    });
  });
  afterAll(async () => {
    await gw.close();
    await sim.close();
    vi.useRealTimers();
  });

  it("a tenant's policy tightens its request limit at run time; other tenants keep the tier's", async () => {
    await newTenant('tight');
    const key = await newKey('tight');
    for (let i = 0; i < 5; i++) {
      const ok = await chat(key.key);
      expect(ok.status).toBe(200);
      expect(ok.headers.get('x-ratelimit-limit-requests')).toBe('100');
    }

    const put = await admin(gw, 'PUT', '/tenants/tight/policy', { limits: { tenant: { requestsPerMinute: 3 } } });
    expect(put.status).toBe(200);
    expect(put.body).toMatchObject({ id: 'tight', object: 'tenant', policy: { limits: { tenant: { requestsPerMinute: 3 } } } });
    expect((await admin(gw, 'GET', '/tenants/tight')).body.policy).toEqual({ limits: { tenant: { requestsPerMinute: 3 } } });

    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await chat(key.key)).status);
    expect(statuses).toEqual([200, 200, 200, 429]);
    const refused = await chat(key.key);
    expect(refused.body.error.code).toBe('rate_limit_exceeded');
    expect(refused.body.error.message).toMatch(/requests per minute \(RPM\): limit 3/);

    // Another tenant on the same tier is not affected.
    const other = await chat(gw.apiKey);
    expect(other.status).toBe(200);
    expect(other.headers.get('x-ratelimit-limit-requests')).toBe('100');

    // Cleared: back to the tier's limit (the emptied bucket refills at 100 a minute from here).
    const cleared = await admin(gw, 'DELETE', '/tenants/tight/policy');
    expect(cleared.body.policy).toBeNull();
    const stillEmpty = await chat(key.key);
    expect(stillEmpty.status).toBe(429);
    expect(stillEmpty.headers.get('x-ratelimit-limit-requests')).toBe('100');
    // 0.7 s later: 100 a minute has put one request back (3 a minute would not have).
    vi.setSystemTime(Date.now() + 700);
    expect((await chat(key.key)).status).toBe(200);
  });

  it("a tenant's policy sets the defaults of its keys, and a key's policy wins over it", async () => {
    await newTenant('layered');
    const [plain, special] = [await newKey('layered'), await newKey('layered')];
    await admin(gw, 'PUT', '/tenants/layered/policy', { limits: { key: { requestsPerMinute: 7 } } });
    expect((await chat(plain.key)).headers.get('x-ratelimit-limit-requests')).toBe('7');
    const put = await admin(gw, 'PUT', `/keys/${special.id}/policy`, { limits: { key: { requestsPerMinute: 50 } } });
    expect(put.status).toBe(200);
    expect(put.body).toMatchObject({ id: special.id, object: 'api_key', policy: { limits: { key: { requestsPerMinute: 50 } } } });
    // The headers report the bucket with the least left: the key's own, here.
    expect((await chat(special.key)).headers.get('x-ratelimit-limit-requests')).toBe('50');
    expect((await chat(plain.key)).headers.get('x-ratelimit-limit-requests')).toBe('7');

    // A new tenant policy replaces the old one; null removes the tier's own tenant limit.
    await admin(gw, 'PUT', '/tenants/layered/policy', { limits: { tenant: { requestsPerMinute: null } } });
    const unlimited = await chat(plain.key);
    expect(unlimited.status).toBe(200);
    expect(unlimited.headers.get('x-ratelimit-limit-requests')).toBeNull(); // nothing limits it any more
    expect((await chat(special.key)).headers.get('x-ratelimit-limit-requests')).toBe('50');
  });

  it("a key's policy lifts its tier's budget at run time", async () => {
    await newTenant('spender');
    const key = (await admin(gw, 'POST', '/keys', { tenant_id: 'spender', tier: 'premium' })).body as { id: string; key: string };
    let res = await chat(key.key);
    for (let i = 0; i < 20 && res.status === 200; i++) res = await chat(key.key);
    expect(res.status).toBe(402);
    expect(res.body.error.message).toMatch(/daily budget of key/);

    const put = await admin(gw, 'PUT', `/keys/${key.id}/policy`, { budgets: { key: { dailyUsd: null } } });
    expect(put.status).toBe(200);
    expect((await admin(gw, 'GET', `/keys/${key.id}`)).body.policy).toEqual({ budgets: { key: { dailyUsd: null } } });
    expect((await chat(key.key)).status).toBe(200);

    // Raised instead of removed: a new cap, above what was spent.
    await admin(gw, 'PUT', `/keys/${key.id}/policy`, { budgets: { key: { dailyUsd: 5 } } });
    expect((await chat(key.key)).status).toBe(200);

    // Cleared: the tier's $0.02 applies again.
    expect((await admin(gw, 'DELETE', `/keys/${key.id}/policy`)).body.policy).toBeNull();
    expect((await chat(key.key)).status).toBe(402);
  });

  it('refuses an invalid policy with a 400 problem naming the field, and unknown ids with 404', async () => {
    const bad = await admin(gw, 'PUT', `/tenants/${gw.tenantId}/policy`, { limits: { key: { tokensPerMinute: -1 } } });
    expect(bad.status).toBe(400);
    expect(bad.type).toMatch(/application\/problem\+json/);
    expect(bad.body).toMatchObject({ status: 400, param: 'limits.key.tokensPerMinute' });
    expect(bad.body.detail).toMatch(/Invalid policy field 'limits\.key\.tokensPerMinute'/);

    const unknownField = await admin(gw, 'PUT', `/tenants/${gw.tenantId}/policy`, { budgets: { key: { weeklyUsd: 1 } } });
    expect(unknownField.body).toMatchObject({ status: 400, param: 'budgets.key.weeklyUsd' });

    const key = await newKey(gw.tenantId);
    const tenantScope = await admin(gw, 'PUT', `/keys/${key.id}/policy`, { limits: { tenant: { requestsPerMinute: 1 } } });
    expect(tenantScope.body).toMatchObject({ status: 400, param: 'limits.tenant' });

    const notObject = await admin(gw, 'PUT', `/keys/${key.id}/policy`, [1]);
    expect(notObject.status).toBe(400);

    expect((await admin(gw, 'PUT', '/tenants/nope/policy', {})).status).toBe(404);
    expect((await admin(gw, 'DELETE', '/keys/key_nope/policy')).status).toBe(404);
    // Nothing was stored by the refused calls.
    expect((await admin(gw, 'GET', `/tenants/${gw.tenantId}`)).body.policy).toBeNull();
    expect((await admin(gw, 'GET', `/keys/${key.id}`)).body.policy).toBeNull();
  });
});
