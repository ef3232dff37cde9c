/**
 * The storage-quota and submit-time budget refusals every storage mode must give (issue 14,
 * item 5), shared by test/integration/storage-quotas.test.ts (embedded) and
 * storage-quotas.pg.test.ts (distributed). Call `quotaRefusals` inside a describe whose gateway
 * was started with QUOTA_CONFIG.
 */
import { expect, it } from 'vitest';
import type { RawConfig } from '../../src/config/schema.js';
import { FAST_MODELS, auth, hello, postJson } from './gateway.js';

export const MiB = 1024 * 1024;

export const QUOTA_CONFIG: RawConfig = {
  providers: { sim: { kind: 'simulated', models: FAST_MODELS } },
  models: { 'sim-small': { deployments: [{ provider: 'sim' }], price: { input: 1, output: 2 } } },
  quotas: { files: 2, fileBytes: 4 * MiB, jobs: 3, jobBytes: 64 * 1024, feedback: 2 },
  jobs: { workers: false },
};

/** A new tenant with its own key (each test gets one: quotas are per tenant). */
export async function newTenant(gw: { url: string; adminKey: string }, name: string): Promise<{ id: string; key: string; keyId: string }> {
  const admin = auth(gw.adminKey);
  const tenant = await postJson(`${gw.url}/admin/v1/tenants`, { name }, admin);
  expect(tenant.status).toBe(201);
  const key = await postJson(`${gw.url}/admin/v1/keys`, { tenant_id: tenant.body.id, name }, admin);
  expect(key.status).toBe(201);
  return { id: tenant.body.id, key: key.body.key, keyId: key.body.id };
}

export function upload(url: string, key: string, content: Buffer | string, filename = 'in.jsonl'): Promise<Response> {
  const form = new FormData();
  form.append('purpose', 'batch');
  form.append('file', new Blob([content]), filename);
  return fetch(`${url}/v1/files`, { method: 'POST', headers: auth(key), body: form });
}

const job = { body: hello('sim-small') };
const line = (id: string) => JSON.stringify({ custom_id: id, method: 'POST', url: '/v1/chat/completions', body: hello('sim-small') });

/** The refusals every mode must give; `gw` is a gateway started with QUOTA_CONFIG. */
export function quotaRefusals(get: () => { url: string; adminKey: string }): void {
  it("a tenant whose budget is used up: 402 at submit for jobs, respond-async and batches, the online path's error; nothing is queued", async () => {
    const gw = get();
    const t = await newTenant(gw, 'Spent Co');
    const file = await (await upload(gw.url, t.key, `${line('a')}\n`)).json();
    const policy = await fetch(`${gw.url}/admin/v1/tenants/${t.id}/policy`, {
      method: 'PUT',
      headers: { ...auth(gw.adminKey), 'content-type': 'application/json' },
      body: JSON.stringify({ budgets: { tenant: { dailyUsd: 0 } } }),
    });
    expect(policy.status).toBe(200);

    const online = await postJson(`${gw.url}/v1/chat/completions`, hello('sim-small'), auth(t.key));
    expect(online.status).toBe(402);
    const submitted = await postJson(`${gw.url}/v1/jobs`, job, auth(t.key));
    const async = await postJson(`${gw.url}/v1/chat/completions`, hello('sim-small'), { ...auth(t.key), prefer: 'respond-async' });
    const batch = await postJson(`${gw.url}/v1/batches`, { input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' }, auth(t.key));
    for (const res of [submitted, async, batch]) {
      expect(res.status).toBe(402);
      expect(res.body.error.code).toBe(online.body.error.code);
      expect(res.body.error.type).toBe('insufficient_quota');
      expect(res.body.error.message).toContain(`daily budget of tenant '${t.id}' ($0) is used up`);
    }
    expect((await (await fetch(`${gw.url}/v1/jobs`, { headers: auth(t.key) })).json()).data).toEqual([]);
    expect((await (await fetch(`${gw.url}/v1/batches`, { headers: auth(t.key) })).json()).data).toEqual([]);
  });

  it('quotas.files and quotas.fileBytes: 402 storage_quota_exceeded naming the setting; room comes back with a delete', async () => {
    const gw = get();
    const t = await newTenant(gw, 'Files Co');
    const a = await upload(gw.url, t.key, '{"a":1}\n');
    const b = await upload(gw.url, t.key, '{"b":2}\n');
    expect([a.status, b.status]).toEqual([200, 200]);
    const third = await upload(gw.url, t.key, '{"c":3}\n');
    expect(third.status).toBe(402);
    const err = (await third.json()).error;
    expect(err.code).toBe('storage_quota_exceeded');
    expect(err.type).toBe('insufficient_quota');
    expect(err.message).toContain('quotas.files: 2');
    expect((await fetch(`${gw.url}/v1/files/${(await a.json()).id}`, { method: 'DELETE', headers: auth(t.key) })).status).toBe(200);

    // Bytes: 3 MiB fits the 4 MiB quota once, not twice (refused from its Content-Length, before the body).
    const big = await upload(gw.url, t.key, Buffer.alloc(3 * MiB, 0x61));
    expect(big.status).toBe(200);
    await fetch(`${gw.url}/v1/files/${(await b.json()).id}`, { method: 'DELETE', headers: auth(t.key) });
    const again = await upload(gw.url, t.key, Buffer.alloc(3 * MiB, 0x61));
    expect(again.status).toBe(402);
    expect((await again.json()).error.message).toContain('quotas.fileBytes');
  });

  it('quotas.jobs: the fourth stored job and a batch that would pass it are refused; other tenants are not', async () => {
    const gw = get();
    const t = await newTenant(gw, 'Jobs Co');
    const file = await (await upload(gw.url, t.key, `${line('a')}\n${line('b')}\n`)).json();
    for (let i = 0; i < 3; i++) expect((await postJson(`${gw.url}/v1/jobs`, job, auth(t.key))).status).toBe(202);
    const fourth = await postJson(`${gw.url}/v1/jobs`, job, auth(t.key));
    expect(fourth.status).toBe(402);
    expect(fourth.body.error.message).toContain('quotas.jobs: 3');
    const batch = await postJson(`${gw.url}/v1/batches`, { input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' }, auth(t.key));
    expect(batch.status).toBe(402);
    expect(batch.body.error).toMatchObject({ code: 'storage_quota_exceeded', param: 'input_file_id' });
    const other = await newTenant(gw, 'Other Jobs Co');
    expect((await postJson(`${gw.url}/v1/jobs`, job, auth(other.key))).status).toBe(202);
  });

  it('quotas.jobBytes: a job body that would pass it is refused', async () => {
    const gw = get();
    const t = await newTenant(gw, 'Big Jobs Co');
    const big = { body: hello('sim-small', { messages: [{ role: 'user', content: 'x'.repeat(40 * 1024) }] }) };
    expect((await postJson(`${gw.url}/v1/jobs`, big, auth(t.key))).status).toBe(202);
    const second = await postJson(`${gw.url}/v1/jobs`, big, auth(t.key));
    expect(second.status).toBe(402);
    expect(second.body.error.message).toContain('quotas.jobBytes');
  });

  it('quotas.feedback: one verdict per request id, up to the quota', async () => {
    const gw = get();
    const t = await newTenant(gw, 'Feedback Co');
    const give = (id: string) => postJson(`${gw.url}/v1/feedback`, { request_id: id, rating: 'good' }, auth(t.key));
    expect((await give('req-1')).status).toBe(200);
    expect((await give('req-2')).status).toBe(200);
    const third = await give('req-3');
    expect(third.status).toBe(402);
    expect(third.body.error).toMatchObject({ code: 'storage_quota_exceeded', param: 'request_id' });
    expect(third.body.error.message).toContain('quotas.feedback: 2');
  });

  it("uploads count against the key's request rate limit", async () => {
    const gw = get();
    const t = await newTenant(gw, 'Busy Co');
    const policy = await fetch(`${gw.url}/admin/v1/keys/${t.keyId}/policy`, {
      method: 'PUT',
      headers: { ...auth(gw.adminKey), 'content-type': 'application/json' },
      body: JSON.stringify({ limits: { key: { requestsPerMinute: 1 } } }),
    });
    expect(policy.status).toBe(200);
    expect((await upload(gw.url, t.key, '{}\n')).status).toBe(200);
    const second = await upload(gw.url, t.key, '{}\n');
    expect(second.status).toBe(429);
    expect(second.headers.get('retry-after')).not.toBeNull();
    expect((await second.json()).error.code).toBe('rate_limit_exceeded');
  });
}

