import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type TestGateway, auth, hello, postJson, startGateway } from '../helpers/gateway.js';

async function admin(gw: TestGateway, method: string, path: string, body?: unknown, key = gw.adminKey) {
  const res = await fetch(`${gw.url}/admin/v1${path}`, {
    method,
    headers: { ...auth(key), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, type: res.headers.get('content-type'), body: (await res.json()) as any };
}

describe('authentication', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    // Key expiry is read from Date.now(): a fake Date (real timers and sockets) that only the tests move.
    vi.useFakeTimers({ toFake: ['Date'] });
    gw = await startGateway({ auth: { cacheTtlMs: 60_000 }, tiers: { free: { models: ['sim-small'] }, standard: {}, premium: {} } });
  });
  afterAll(async () => {
    await gw.close();
    vi.useRealTimers();
  });
  const chat = (key?: string, body: unknown = hello()) => postJson(`${gw.url}/v1/chat/completions`, body, key ? auth(key) : {});

  it('401 without a key, with a wrong key, and with an admin key on /v1', async () => {
    const none = await chat();
    expect(none.status).toBe(401);
    expect(none.body.error).toMatchObject({ type: 'invalid_request_error', code: 'missing_api_key' });
    const wrong = await chat('tg-not-a-real-key-000000');
    expect(wrong.status).toBe(401);
    expect(wrong.body.error.code).toBe('invalid_api_key');
    expect(wrong.body.error.message).not.toContain('tg-not-a-real-key-000000');
    expect((await chat(gw.adminKey)).status).toBe(401);
  });

  it('accepts the Azure-style api-key header too', async () => {
    const res = await postJson(`${gw.url}/v1/chat/completions`, hello(), { 'api-key': gw.apiKey });
    expect(res.status).toBe(200);
  });

  it('revoking a key through the admin API stops it at once, despite the auth cache', async () => {
    const created = await admin(gw, 'POST', '/keys', { tenant_id: gw.tenantId, name: 'to revoke' });
    expect(created.status).toBe(201);
    expect(created.body.key).toMatch(/^tg-/);
    expect((await chat(created.body.key)).status).toBe(200); // now cached
    const revoked = await admin(gw, 'DELETE', `/keys/${created.body.id}`);
    expect(revoked.body.revoked_at).not.toBeNull();
    const after = await chat(created.body.key);
    expect(after.status).toBe(401);
    expect(after.body.error.code).toBe('revoked_api_key');
  });

  it('an expired key is refused', async () => {
    const created = await admin(gw, 'POST', '/keys', { tenant_id: gw.tenantId, expires_in: '1s' });
    expect(Date.parse(created.body.expires_at)).toBe(Date.now() + 1_000);
    expect((await chat(created.body.key)).status).toBe(200); // cached by the authenticator from here on
    vi.setSystemTime(Date.now() + 999);
    expect((await chat(created.body.key)).status).toBe(200);
    vi.setSystemTime(Date.now() + 1); // its expiry: refused, although the cache still holds it
    const res = await chat(created.body.key);
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe('expired_api_key');
  });

  it('restricts models by key and by tier, in requests and in /v1/models', async () => {
    const onlyLarge = await admin(gw, 'POST', '/keys', { tenant_id: gw.tenantId, allowed_models: ['sim-large'] });
    const denied = await chat(onlyLarge.body.key, hello('sim-small'));
    expect(denied.status).toBe(403);
    expect(denied.body.error).toMatchObject({ type: 'permission_error', code: 'model_not_allowed', param: 'model' });
    expect((await chat(onlyLarge.body.key, hello('sim-large'))).status).toBe(200);
    const list = await (await fetch(`${gw.url}/v1/models`, { headers: auth(onlyLarge.body.key) })).json();
    expect(list.data.map((m: { id: string }) => m.id)).toEqual(['sim-large']);

    const free = await admin(gw, 'POST', '/keys', { tenant_id: gw.tenantId, tier: 'free' });
    expect((await chat(free.body.key, hello('sim-large'))).status).toBe(403);
    const freeList = await (await fetch(`${gw.url}/v1/models`, { headers: auth(free.body.key) })).json();
    expect(freeList.data.map((m: { id: string }) => m.id)).toEqual(['sim-small']);
  });

  it('a key with a fixed user id overrides the request user', async () => {
    const k = await admin(gw, 'POST', '/keys', { tenant_id: gw.tenantId, user_id: 'alice' });
    expect(k.body.user_id).toBe('alice');
    expect((await chat(k.body.key, hello('sim-small', { user: 'mallory' }))).status).toBe(200);
  });
});

describe('admin API', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway();
  });
  afterAll(() => gw.close());

  it('needs an admin key; an API key gets 403 problem+json', async () => {
    const res = await admin(gw, 'GET', '/tenants', undefined, gw.apiKey);
    expect(res.status).toBe(403);
    expect(res.type).toMatch(/application\/problem\+json/);
    expect(res.body).toMatchObject({ status: 403, title: 'admin required' });
    expect((await fetch(`${gw.url}/admin/v1/tenants`)).status).toBe(401);
  });

  it('creates, reads, updates, lists and deletes tenants', async () => {
    const t = await admin(gw, 'POST', '/tenants', { id: 'acme', name: 'Acme Corp', tier: 'premium', metadata: { plan: 'gold' } });
    expect(t.status).toBe(201);
    expect(t.body).toMatchObject({ id: 'acme', name: 'Acme Corp', tier: 'premium', metadata: { plan: 'gold' } });
    expect((await admin(gw, 'POST', '/tenants', { id: 'acme', name: 'again' })).status).toBe(409);
    expect((await admin(gw, 'GET', '/tenants/acme')).body.name).toBe('Acme Corp');
    expect((await admin(gw, 'PATCH', '/tenants/acme', { name: 'ACME' })).body.name).toBe('ACME');
    const list = await admin(gw, 'GET', '/tenants');
    expect(list.body.data.map((x: { id: string }) => x.id)).toContain('acme');

    const key = await admin(gw, 'POST', '/keys', { tenant_id: 'acme' });
    expect(key.body.tier).toBe('premium'); // inherits the tenant's tier
    expect((await postJson(`${gw.url}/v1/chat/completions`, hello(), auth(key.body.key))).status).toBe(200);

    expect((await admin(gw, 'DELETE', '/tenants/acme')).body.deleted).toBe(true);
    expect((await admin(gw, 'GET', '/tenants/acme')).status).toBe(404);
    expect((await postJson(`${gw.url}/v1/chat/completions`, hello(), auth(key.body.key))).status).toBe(401);
  });

  it('lists keys without secrets or hashes, and names bad fields', async () => {
    const list = await admin(gw, 'GET', `/keys?tenant_id=${gw.tenantId}`);
    expect(list.status).toBe(200);
    for (const k of list.body.data) {
      expect(k).not.toHaveProperty('key');
      expect(k).not.toHaveProperty('hash');
      expect(k.prefix).toMatch(/^tg-/);
    }
    const badTier = await admin(gw, 'POST', '/keys', { tenant_id: gw.tenantId, tier: 'platinum' });
    expect(badTier.status).toBe(400);
    expect(badTier.body).toMatchObject({ param: 'tier' });
    expect(badTier.body.detail).toMatch(/unknown tier 'platinum'/);
    const badModel = await admin(gw, 'POST', '/keys', { tenant_id: gw.tenantId, allowed_models: ['gpt-9'] });
    expect(badModel.body.param).toBe('allowed_models[0]');
    const noTenant = await admin(gw, 'POST', '/keys', { tenant_id: 'nope' });
    expect(noTenant.status).toBe(404);
    const missing = await admin(gw, 'POST', '/keys', {});
    expect(missing.status).toBe(400);
    expect(missing.body.detail).toMatch(/tenant_id/);
    const extra = await admin(gw, 'POST', '/tenants', { name: 'x', colour: 'red' });
    expect(extra.status).toBe(400);
    expect((await admin(gw, 'GET', '/keys/key_nope')).status).toBe(404);
    expect((await admin(gw, 'GET', '/nothing-here')).type).toMatch(/problem\+json/);
  });

  it('updates a key (models, expiry) and revokes it idempotently via POST .../revoke', async () => {
    const k = await admin(gw, 'POST', '/keys', { tenant_id: gw.tenantId });
    const patched = await admin(gw, 'PATCH', `/keys/${k.body.id}`, { allowed_models: ['sim-large'], expires_in: '1h' });
    expect(patched.body.allowed_models).toEqual(['sim-large']);
    expect(Date.parse(patched.body.expires_at)).toBeGreaterThan(Date.now());
    expect((await postJson(`${gw.url}/v1/chat/completions`, hello('sim-small'), auth(k.body.key))).status).toBe(403);
    const r1 = await admin(gw, 'POST', `/keys/${k.body.id}/revoke`);
    const r2 = await admin(gw, 'POST', `/keys/${k.body.id}/revoke`);
    expect(r1.body.revoked_at).toBe(r2.body.revoked_at);
  });
});
