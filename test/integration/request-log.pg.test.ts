/**
 * The request log in distributed mode: two gateways sharing PostgreSQL (and Redis). Each writes
 * its rows to the shared table; a tenant's opt-in set through one gateway applies on the other.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { RawConfig } from '../../src/config/schema.js';
import type { SimServer } from '../../src/providers/simulated/server.js';
import { type PeerGateway, type TestGateway, auth, hello, httpSimConfig, postJson, startGateway, startPeer, startSim } from '../helpers/gateway.js';
import { distributedStorage, dropDistributed, requireService, uniqueName } from '../helpers/services.js';

const redis = await requireService('redis');
const pg = await requireService('postgres');

describe.skipIf(!redis || !pg)('request log across gateways sharing PostgreSQL', () => {
  const schema = uniqueName('tg_reqlog');
  let sim: SimServer;
  let a: TestGateway;
  let b: PeerGateway;

  const list = async (query: string) => {
    const res = await fetch(`${a.url}/admin/v1/requests?${query}`, { headers: auth(a.adminKey) });
    expect(res.status).toBe(200);
    return ((await res.json()) as any).data as any[];
  };
  /** The rows of `query`, once there are `count` (the peer writes its rows at its flush interval). */
  const rowsOnceThere = (query: string, count: number) =>
    vi.waitFor(
      async () => {
        const rows = await list(query);
        expect(rows).toHaveLength(count);
        return rows;
      },
      { timeout: 10_000, interval: 5 },
    );

  beforeAll(async () => {
    sim = await startSim();
    const raw: RawConfig = httpSimConfig(
      { up: sim },
      { chat: { deployments: [{ provider: 'up', model: 'sim-small' }] } },
      // A long auth cache TTL: the opt-in must reach the peer over the change bus, not by expiry.
      { storage: distributedStorage(schema), requestLog: { flushMs: 50 }, auth: { cacheTtlMs: 600_000 } },
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

  it('lists the requests both gateways answered', async () => {
    expect((await postJson(`${a.url}/v1/chat/completions`, hello('chat', { user: 'from-a' }), auth(a.apiKey))).status).toBe(200);
    expect((await postJson(`${b.url}/v1/chat/completions`, hello('chat', { user: 'from-b' }), auth(a.apiKey))).status).toBe(200);
    const rows = await rowsOnceThere(`tenant_id=${a.tenantId}`, 2);
    expect(rows.map((r) => r.user).sort()).toEqual(['from-a', 'from-b']);
    expect(rows.every((r) => r.served_model === 'chat' && r.status === 200 && !('prompt' in r))).toBe(true);
  });

  it('applies a tenant opt-in made through one gateway on the other, with redaction', async () => {
    const adminCall = (method: string, path: string, body: unknown) =>
      fetch(`${a.url}/admin/v1${path}`, { method, headers: { ...auth(a.adminKey), 'content-type': 'application/json' }, body: JSON.stringify(body) }).then(
        async (r) => ({ status: r.status, body: (await r.json()) as any }),
      );
    // The peer authenticates the tenant's key first, so its cache holds the tenant without the opt-in.
    expect((await postJson(`${b.url}/v1/chat/completions`, hello('chat', { user: 'before' }), auth(a.apiKey))).status).toBe(200);
    expect((await adminCall('PUT', `/tenants/${a.tenantId}/policy`, { requestLog: { content: true } })).status).toBe(200);
    // The peer learns of the opt-in over the change bus: ask through it until a request's text is kept.
    let i = 0;
    const row = await vi.waitFor(
      async () => {
        const user = `after-${i++}`;
        const body = { model: 'chat', user, messages: [{ role: 'user', content: 'reach me at ops@example.com' }] };
        expect((await postJson(`${b.url}/v1/chat/completions`, body, auth(a.apiKey))).status).toBe(200);
        const [written] = await rowsOnceThere(`user=${user}`, 1);
        expect(written.prompt).toBe('user: reach me at [email]');
        return written;
      },
      { timeout: 20_000, interval: 5 },
    );
    expect(typeof row.answer).toBe('string');
  });
});
