/**
 * The ledger's roll-up through the gateway (issue 15, item 7): usage events past
 * ledger.detailRetentionDays are rolled up into hourly rows by the gateway's own job, and the usage
 * report (`GET /admin/v1/usage`) and the spend budgets are seeded from stay the same.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { SimServer } from '../../src/providers/simulated/server.js';
import { type TestGateway, auth, hello, httpSimConfig, postJson, startGateway, startSim } from '../helpers/gateway.js';

const DAY = 86_400_000;

describe('ledger roll-ups in the gateway', () => {
  let sim: SimServer;
  let gw: TestGateway;
  beforeAll(async () => {
    sim = await startSim();
    gw = await startGateway(
      httpSimConfig(
        { up: sim },
        { 'sim-small': { deployments: [{ provider: 'up' }], price: { input: 1, output: 2 } }, 'sim-large': { deployments: [{ provider: 'up' }], price: { input: 3, output: 6 } } },
        { ledger: { detailRetentionDays: 1, rollupEveryMs: 1_000 } },
      ),
    );
  });
  afterAll(async () => {
    await gw.close();
    await sim.close();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  const usage = async (query: string) => {
    const res = await fetch(`${gw.url}/admin/v1/usage?${query}`, { headers: auth(gw.adminKey) });
    expect(res.status).toBe(200);
    return (await res.json()) as { data: unknown[]; total: unknown };
  };

  it('rolls up requests a day old on its own, and the usage report and budget spend stay the same', async () => {
    const ids: string[] = [];
    for (const [i, model] of ['sim-small', 'sim-large', 'sim-small', 'sim-large', 'sim-small'].entries()) {
      const res = await postJson(`${gw.url}/v1/chat/completions`, hello(model), { ...auth(gw.apiKey), 'x-tollgate-user': `user-${i % 2}` });
      expect(res.status).toBe(200);
      ids.push(res.headers.get('x-request-id') as string);
    }
    await gw.settled();
    const ledger = gw.gateway.storage.ledger;
    for (const id of ids) expect(await ledger.get(id)).not.toBeNull();
    const start = Date.now();
    const to = new Date(start + 3 * DAY).toISOString();
    const reports = async () => ({
      byTenantModelDay: await usage(`group_by=tenant,model,day&to=${to}`),
      byKeyUser: await usage(`group_by=key,user&to=${to}`),
      spent: {
        lifetime: await ledger.spent({ tenantId: gw.tenantId }, 0, Number.MAX_SAFE_INTEGER),
        month: await ledger.spent({ tenantId: gw.tenantId }, Date.UTC(new Date(start).getUTCFullYear(), new Date(start).getUTCMonth(), 1), start + 1),
      },
    });
    const before = await reports();
    expect((before.byTenantModelDay.total as { requests: number }).requests).toBe(5);
    expect(before.spent.lifetime).toBeGreaterThan(0);

    // Two days later (only Date is moved: the job's timer is real), the gateway's roll-up takes them.
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(start + 2 * DAY);
    await vi.waitFor(async () => expect(await ledger.get(ids.at(-1)!)).toBeNull(), { timeout: 10_000, interval: 20 });
    for (const id of ids) expect(await ledger.get(id)).toBeNull();
    expect(await reports()).toEqual(before);
  });
});
