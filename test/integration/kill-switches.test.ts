/**
 * Kill switches through HTTP: per key, tenant, model, provider and globally, each refused with
 * the right status and message and lifted again; switches written to the store by another
 * process take effect at the next poll (killSwitches.refreshMs, at most one second).
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildConfig } from '../../src/config/loader.js';
import { type Gateway, createGateway } from '../../src/main.js';
import { createLogger } from '../../src/observability/logger.js';
import type { SimServer } from '../../src/providers/simulated/server.js';
import { type TestGateway, auth, hello, httpSimConfig, postJson, startGateway, startSim } from '../helpers/gateway.js';

async function admin(gw: { url: string; adminKey: string }, method: string, path: string, body?: unknown) {
  const res = await fetch(`${gw.url}/admin/v1${path}`, {
    method,
    headers: { ...auth(gw.adminKey), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, type: res.headers.get('content-type'), body: (await res.json()) as any };
}

describe('kill switches', () => {
  let up: SimServer;
  let backup: SimServer;
  let gw: TestGateway;
  const chat = (key: string, model = 'sim-small') => postJson(`${gw.url}/v1/chat/completions`, hello(model, { max_tokens: 5 }), auth(key));
  const newKey = async (tenantId = gw.tenantId) => (await admin(gw, 'POST', '/keys', { tenant_id: tenantId })).body as { id: string; key: string };
  const kill = async (body: Record<string, string>) => {
    const res = await admin(gw, 'POST', '/kill-switches', body);
    expect(res.status).toBe(201);
    return res.body as { id: string };
  };
  const modelsListed = async (key = gw.apiKey) => {
    const res = await fetch(`${gw.url}/v1/models`, { headers: auth(key) });
    return res.status === 200 ? ((await res.json()) as { data: Array<{ id: string }> }).data.map((m) => m.id) : res.status;
  };
  const lift = async (id: string) => expect((await admin(gw, 'DELETE', `/kill-switches/${id}`)).status).toBe(200);

  beforeAll(async () => {
    // The store is polled on a setInterval: faked (only setInterval; timeouts, Date and sockets stay
    // real), so a poll happens exactly when a test moves the clock, and never between.
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    up = await startSim();
    backup = await startSim();
    gw = await startGateway({
      ...httpSimConfig(
        { up, backup },
        {
          'sim-small': { deployments: [{ provider: 'up' }, { provider: 'backup' }], aliases: ['small'] },
          'sim-large': { deployments: [{ provider: 'up' }] },
        },
      ),
      // Long enough that only an explicit refresh (or the poll) can explain what the tests see.
      auth: { cacheTtlMs: 60_000 },
    });
  });
  afterAll(async () => {
    await gw.close();
    await up.close();
    await backup.close();
    vi.useRealTimers();
  });
  /** One poll of the store by every gateway of this file (one refreshMs of the faked interval). */
  const poll = () => vi.advanceTimersByTimeAsync(gw.gateway.config.killSwitches.refreshMs);
  const eventually = (check: () => Promise<void>) => vi.waitFor(check, { timeout: 10_000, interval: 5 });

  it('per key: 403 access_disabled naming the switch and its reason; other keys pass; lifted again', async () => {
    const key = await newKey();
    expect((await chat(key.key)).status).toBe(200); // cached by the authenticator from here on
    const created = await admin(gw, 'POST', '/kill-switches', { scope: 'key', target: key.id, reason: 'key leaked in a public repo' });
    expect(created.status).toBe(201);
    expect(created.body).toEqual({
      id: expect.stringMatching(/^ks_/),
      object: 'kill_switch',
      scope: 'key',
      target: key.id,
      reason: 'key leaked in a public repo',
      created_by: expect.stringMatching(/^key_/),
      created_at: expect.any(String),
    });

    const refused = await chat(key.key);
    expect(refused.status).toBe(403);
    expect(refused.body.error).toMatchObject({ type: 'permission_error', code: 'access_disabled' });
    expect(refused.body.error.message).toBe(`This API key (${key.id}) is disabled by a kill switch (${created.body.id}): key leaked in a public repo`);
    expect((await chat(gw.apiKey)).status).toBe(200);

    await lift(created.body.id);
    expect((await chat(key.key)).status).toBe(200);
  });

  it('per tenant: every key of the tenant is refused, other tenants pass', async () => {
    const tenant = (await admin(gw, 'POST', '/tenants', { name: 'Runaway Inc', id: 'runaway' })).body;
    const [a, b] = [await newKey(tenant.id), await newKey(tenant.id)];
    const sw = await kill({ scope: 'tenant', target: tenant.id, reason: 'agent stuck in a loop' });
    for (const k of [a, b]) {
      const res = await chat(k.key);
      expect(res.status).toBe(403);
      expect(res.body.error.code).toBe('access_disabled');
      expect(res.body.error.message).toBe(`Requests of tenant 'runaway' are disabled by a kill switch (${sw.id}): agent stuck in a loop`);
    }
    expect((await chat(gw.apiKey)).status).toBe(200);
    await lift(sw.id);
    expect((await chat(a.key)).status).toBe(200);
  });

  it('per model (named by an alias): 503 model_disabled; other models pass', async () => {
    const sw = await kill({ scope: 'model', target: 'small', reason: 'answers are wrong since the upgrade' });
    for (const name of ['sim-small', 'small']) {
      const res = await chat(gw.apiKey, name);
      expect(res.status).toBe(503);
      expect(res.body.error).toMatchObject({ type: 'server_error', code: 'model_disabled', param: 'model' });
      expect(res.body.error.message).toBe(`The model 'sim-small' is disabled by a kill switch (${sw.id}): answers are wrong since the upgrade`);
    }
    expect((await chat(gw.apiKey, 'sim-large')).status).toBe(200);
    expect(await modelsListed()).not.toContain('sim-small'); // /v1/models shows what can answer now
    await lift(sw.id);
    expect((await chat(gw.apiKey, 'sim-small')).status).toBe(200);
    expect(await modelsListed()).toContain('sim-small');
  });

  it('per provider: its deployments are skipped; a model left with none gets 503 naming the provider', async () => {
    const sw = await kill({ scope: 'provider', target: 'up', reason: 'provider incident' });

    const fallback = await chat(gw.apiKey, 'sim-small');
    expect(fallback.status).toBe(200);
    expect(fallback.headers.get('x-tollgate-provider')).toBe('backup');
    expect(fallback.headers.get('x-tollgate-attempts')).toBe('1'); // no call to the killed provider

    const none = await chat(gw.apiKey, 'sim-large');
    expect(none.status).toBe(503);
    expect(none.body.error.code).toBe('model_disabled');
    expect(none.body.error.message).toBe(
      `Every deployment of model 'sim-large' is disabled: provider 'up' is disabled by a kill switch (${sw.id}): provider incident`,
    );

    const models = await modelsListed();
    expect(models).toContain('sim-small'); // it still has a live deployment
    expect(models).not.toContain('sim-large'); // it has none

    await lift(sw.id);
    const back = await chat(gw.apiKey, 'sim-small');
    expect(back.headers.get('x-tollgate-provider')).toBe('up');
    expect((await chat(gw.apiKey, 'sim-large')).status).toBe(200);
  });

  it('global: every key is refused, the admin API keeps working, and lifting it restores service', async () => {
    const key = await newKey();
    const sw = await kill({ scope: 'global', reason: 'incident 1234: stop all spend' });
    for (const k of [gw.apiKey, key.key]) {
      const res = await chat(k);
      expect(res.status).toBe(403);
      expect(res.body.error.code).toBe('access_disabled');
      expect(res.body.error.message).toBe(`All requests are disabled by a global kill switch (${sw.id}): incident 1234: stop all spend`);
    }
    expect(await modelsListed()).toBe(403); // the model list too
    const listed = await admin(gw, 'GET', '/kill-switches');
    expect(listed.status).toBe(200);
    expect(listed.body.data.map((s: { id: string }) => s.id)).toEqual([sw.id]);
    await lift(sw.id);
    expect((await chat(gw.apiKey)).status).toBe(200);
    expect((await admin(gw, 'GET', '/kill-switches')).body.data).toEqual([]);
  });

  it('admin API: 400 naming the field, 409 for a second switch on the same target, 404 for an unknown id', async () => {
    const badScope = await admin(gw, 'POST', '/kill-switches', { scope: 'team', target: 'x', reason: 'r' });
    expect(badScope.status).toBe(400);
    expect(badScope.type).toMatch(/application\/problem\+json/);
    expect(badScope.body).toMatchObject({ status: 400, param: 'scope' });
    const noReason = await admin(gw, 'POST', '/kill-switches', { scope: 'model', target: 'sim-small' });
    expect(noReason.body).toMatchObject({ status: 400, param: 'reason' });
    const unknownModel = await admin(gw, 'POST', '/kill-switches', { scope: 'model', target: 'gpt-9', reason: 'r' });
    expect(unknownModel.body).toMatchObject({ status: 400, param: 'target', detail: "Unknown model 'gpt-9'." });
    const unknownProvider = await admin(gw, 'POST', '/kill-switches', { scope: 'provider', target: 'azure', reason: 'r' });
    expect(unknownProvider.body.detail).toMatch(/Unknown provider 'azure' \(configured: up, backup\)/);

    const sw = await kill({ scope: 'model', target: 'sim-large', reason: 'first' });
    const dup = await admin(gw, 'POST', '/kill-switches', { scope: 'model', target: 'sim-large', reason: 'second' });
    expect(dup.status).toBe(409);
    expect(dup.body.detail).toMatch(/a kill switch for model 'sim-large' already exists/);
    await lift(sw.id);
    const gone = await admin(gw, 'DELETE', `/kill-switches/${sw.id}`);
    expect(gone.status).toBe(404);
    expect(gone.body.detail).toBe(`kill switch '${sw.id}' not found`);
  });

  it('a switch written straight to the store (as another process would) applies at the next poll, and so does its removal', async () => {
    expect(gw.gateway.config.killSwitches.refreshMs).toBeLessThanOrEqual(1_000); // "within one second"
    const key = await newKey();
    expect((await chat(key.key)).status).toBe(200);
    const records = gw.gateway.storage.records;
    const sw = await records.createKillSwitch({ scope: 'key', target: key.id, reason: 'set elsewhere' });
    expect((await chat(key.key)).status).toBe(200); // nothing told this process: not seen before its poll
    await poll();
    await eventually(async () => expect((await chat(key.key)).status).toBe(403));
    await records.deleteKillSwitch(sw.id);
    expect((await chat(key.key)).status).toBe(403);
    await poll();
    await eventually(async () => expect((await chat(key.key)).status).toBe(200));
  });

  it('a second gateway process on the same SQLite file obeys switches made through the first at its next poll', async () => {
    await gw.gateway.ledger.flush(); // the two share this process's spool folder: leave nothing open in it
    const second: Gateway = await createGateway(
      buildConfig({
        ...httpSimConfig({ up, backup }, { 'sim-small': { deployments: [{ provider: 'up' }] }, 'sim-large': { deployments: [{ provider: 'up' }] } }),
        server: { port: 0, host: '127.0.0.1' },
        storage: { kind: 'embedded', dir: gw.gateway.storage.localDir },
      }),
      { logger: createLogger('silent') },
    );
    try {
      const url = await second.listen();
      const ask = async () => (await postJson(`${url}/v1/chat/completions`, hello('sim-small', { max_tokens: 5 }), auth(gw.apiKey))).status;
      expect(await ask()).toBe(200);
      const sw = await kill({ scope: 'tenant', target: gw.tenantId, reason: 'stop the default tenant' });
      expect(await ask()).toBe(200); // the first process's change reaches this one through its poll only
      await poll();
      await eventually(async () => expect(await ask()).toBe(403));
      await lift(sw.id);
      expect(await ask()).toBe(403);
      await poll();
      await eventually(async () => expect(await ask()).toBe(200));
    } finally {
      await second.close();
    }
  });
});
