/**
 * The feature-flag admin routes (src/http/routes/flags.ts) through HTTP (`app.inject`): a small
 * Fastify app with the gateway's error rendering and an admin hook like /admin/v1's, on an
 * in-memory SQLite database. (The wired gateway registers the same plugin under /admin/v1.)
 */
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Authenticator } from '../../src/auth/authenticator.js';
import { extractKey, hashKey } from '../../src/auth/keys.js';
import { GatewayError } from '../../src/errors.js';
import { errorHandler } from '../../src/http/error-handler.js';
import { flagRoutes } from '../../src/http/routes/flags.js';
import { FlagService } from '../../src/routing/flags.js';
import { openDatabase } from '../../src/storage/sqlite/database.js';
import { SqliteFlagStore } from '../../src/storage/sqlite/flags.js';
import { SqliteRecords } from '../../src/storage/sqlite/records.js';

const ADMIN_SECRET = 'tg-admin-flags-api-test-secret';
const ROUTES: Record<string, string[]> = { auto: ['small', 'large'] };
const MODELS = new Set(['sim-small', 'sim-large']);

describe('admin API: /admin/v1/flags', () => {
  let app: FastifyInstance;
  let flags: FlagService;
  let adminKeyId: string;
  let db: ReturnType<typeof openDatabase>;

  const call = async (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, body?: unknown, secret = ADMIN_SECRET) => {
    const res = await app.inject({
      method,
      url: `/admin/v1${url}`,
      headers: { authorization: `Bearer ${secret}` },
      ...(body === undefined ? {} : { payload: body as object }),
    });
    return { status: res.statusCode, type: res.headers['content-type'], body: res.json() as any };
  };
  const create = async (body: Record<string, unknown>) => {
    const res = await call('POST', '/flags', body);
    expect(res.status).toBe(201);
    return res.body;
  };

  beforeAll(async () => {
    db = openDatabase(':memory:');
    const records = new SqliteRecords(db);
    const tenant = await records.createTenant({ name: 'ops' });
    const base = { tenantId: tenant.id, tier: 'standard', allowedModels: null, userId: null, expiresAt: null } as const;
    adminKeyId = (await records.createKey({ ...base, name: 'admin', kind: 'admin', prefix: 'tg-admin-fl', hash: hashKey(ADMIN_SECRET) })).id;
    await records.createKey({ ...base, name: 'api', kind: 'api', prefix: 'tg-api', hash: hashKey('tg-api-secret') });
    const authenticator = new Authenticator({ records, ttlMs: 60_000, tierModels: {} });
    flags = new FlagService({
      store: new SqliteFlagStore(db),
      refreshMs: 60_000,
      knownRoutes: (n) => n in ROUTES,
      knownModel: (n) => MODELS.has(n),
      tierNamesOf: (r) => ROUTES[r],
    });
    await flags.start();

    app = Fastify({ ajv: { customOptions: { coerceTypes: false, allErrors: false, removeAdditional: false, allowUnionTypes: true } } });
    app.setErrorHandler(errorHandler(1_000_000));
    await app.register(
      async (admin) => {
        // What src/http/routes/admin.ts's hook does for every /admin/v1 route.
        admin.addHook('onRequest', async (request) => {
          const auth = await authenticator.authenticate(extractKey(request.headers));
          if (auth.kind !== 'admin') throw new GatewayError('admin_required', 'This endpoint needs an admin key.');
        });
        await admin.register(flagRoutes, { flags, authenticator });
      },
      { prefix: '/admin/v1' },
    );
    await app.ready();
  });

  afterAll(async () => {
    flags.stop();
    await app.close();
    db.close();
  });

  it('creates a flag (201), shows it in snake_case with the admin as the author, and applies it at once', async () => {
    const created = await create({
      name: 'canary-large',
      description: 'large model for ten_a',
      targeting: { tenants: ['ten_a'], percentage: 100 },
      effect: { route: 'auto', model: 'sim-large', cache_mode: 'off' },
    });
    expect(created).toEqual({
      name: 'canary-large',
      object: 'flag',
      description: 'large model for ten_a',
      enabled: true,
      targeting: { tenants: ['ten_a'], keys: null, users: null, tiers: null, percentage: 100 },
      effect: { route: 'auto', model: 'sim-large', tiers: null, cache_mode: 'off' },
      created_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      updated_at: created.created_at,
      updated_by: adminKeyId,
    });
    expect((await call('GET', '/flags/canary-large')).body).toEqual(created);
    expect((await call('GET', '/flags')).body).toEqual({ object: 'list', data: [created] });
    const requester = { tenantId: 'ten_a', tier: 'standard', keyId: 'key_x', userId: null };
    expect(flags.effectsFor('auto', requester)).toEqual([{ route: 'auto', model: 'sim-large', cacheMode: 'off' }]);
  });

  it('refuses a second flag with the same name: 409 problem+json', async () => {
    await create({ name: 'dup', effect: { route: 'auto', cache_mode: 'always' } });
    const res = await call('POST', '/flags', { name: 'dup', effect: { route: 'auto', cache_mode: 'off' } });
    expect(res.status).toBe(409);
    expect(res.type).toMatch(/^application\/problem\+json/);
    expect(res.body).toMatchObject({ status: 409, title: 'conflict', detail: expect.stringContaining("flag 'dup' already exists") });
  });

  it.each([
    ['no effect', { name: 'x' }, 'missing_field', 'effect'],
    ['no route', { name: 'x', effect: { model: 'sim-large' } }, 'missing_field', 'effect.route'],
    ['an unknown member', { name: 'x', effect: { route: 'auto', model: 'sim-large', color: 'red' } }, 'invalid_value', 'effect.color'],
    ['a percentage over 100', { name: 'x', targeting: { percentage: 150 }, effect: { route: 'auto', model: 'sim-large' } }, 'invalid_value', 'targeting.percentage'],
    ['a percentage as text', { name: 'x', targeting: { percentage: '5' }, effect: { route: 'auto', model: 'sim-large' } }, 'invalid_type', 'targeting.percentage'],
    ['a bad name', { name: 'no spaces', effect: { route: 'auto', model: 'sim-large' } }, 'invalid_value', 'name'],
    ['an unknown route', { name: 'x', effect: { route: 'nope', model: 'sim-large' } }, 'invalid_value', 'effect.route'],
    ['an unknown model', { name: 'x', effect: { route: 'auto', model: 'gpt-9' } }, 'invalid_value', 'effect.model'],
    ['an unknown tier', { name: 'x', effect: { route: 'auto', tiers: { xl: ['sim-large'] } } }, 'invalid_value', 'effect.tiers.xl'],
    ['an unknown cache mode', { name: 'x', effect: { route: 'auto', cache_mode: 'sometimes' } }, 'invalid_value', 'effect.cache_mode'],
    ['an effect without a change', { name: 'x', effect: { route: 'auto' } }, 'invalid_value', 'effect'],
  ])('refuses %s with a 400 naming the field', async (_what, body, code, param) => {
    const res = await call('POST', '/flags', body);
    expect(res.status).toBe(400);
    expect(res.type).toMatch(/^application\/problem\+json/);
    expect(res.body).toMatchObject({ type: `https://tollgate.dev/problems/${code}`, param, detail: expect.stringContaining(param) });
    expect((await call('GET', '/flags/x')).status).toBe(404);
  });

  it('PATCH merges: members left out are kept, null removes one', async () => {
    await create({ name: 'ramp', targeting: { tenants: ['ten_a'], percentage: 5 }, effect: { route: 'auto', model: 'sim-large' } });
    let res = await call('PATCH', '/flags/ramp', { targeting: { percentage: 25 }, description: 'ramping' });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ description: 'ramping', targeting: { tenants: ['ten_a'], percentage: 25 }, effect: { model: 'sim-large' } });

    res = await call('PATCH', '/flags/ramp', { targeting: { tenants: null }, effect: { cache_mode: 'off' } });
    expect(res.body).toMatchObject({ targeting: { tenants: null, percentage: 25 }, effect: { route: 'auto', model: 'sim-large', cache_mode: 'off' } });

    res = await call('PATCH', '/flags/ramp', { enabled: false, effect: { model: null } });
    expect(res.body).toMatchObject({ enabled: false, effect: { model: null, cache_mode: 'off' }, updated_by: adminKeyId });

    res = await call('PATCH', '/flags/ramp', { effect: { cache_mode: null } });
    expect(res).toMatchObject({ status: 400, body: { param: 'effect' } });
    res = await call('PATCH', '/flags/ramp', { name: 'renamed' });
    expect(res).toMatchObject({ status: 400, body: { param: 'name', detail: "Unknown parameter: 'name'." } });
    expect((await call('PATCH', '/flags/ghost', { enabled: true })).status).toBe(404);
  });

  it('DELETE removes a flag; a second DELETE is a 404', async () => {
    await create({ name: 'temp', effect: { route: 'sim-small', model: 'sim-large' } });
    expect(await call('DELETE', '/flags/temp')).toMatchObject({ status: 200, body: { name: 'temp', object: 'flag', deleted: true } });
    expect((await call('GET', '/flags/temp')).status).toBe(404);
    expect((await call('DELETE', '/flags/temp')).status).toBe(404);
  });

  it("shows a flag's audit trail newest first, with ISO dates, the actor and the flag before and after; kept after a delete", async () => {
    await create({ name: 'audited', targeting: { percentage: 5 }, effect: { route: 'auto', model: 'sim-large' } });
    await call('PATCH', '/flags/audited', { targeting: { percentage: 25 } });
    await call('DELETE', '/flags/audited');

    const res = await call('GET', '/flags/audited/audit');
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ object: 'list', has_more: false, next_before_id: null });
    const [del, upd, crt] = res.body.data;
    expect(res.body.data).toHaveLength(3);
    expect(del).toMatchObject({ object: 'flag_audit_entry', flag: 'audited', action: 'delete', actor: adminKeyId, after: null, before: { targeting: { percentage: 25 } } });
    expect(upd).toMatchObject({ action: 'update', before: { targeting: { percentage: 5 } }, after: { targeting: { percentage: 25 }, object: 'flag' } });
    expect(crt).toMatchObject({ action: 'create', before: null, after: { name: 'audited', effect: { model: 'sim-large' } } });
    expect(crt.at).toMatch(/^\d{4}-\d\d-\d\dT.*Z$/);
    expect(del.id).toBeGreaterThan(upd.id);
    expect(upd.id).toBeGreaterThan(crt.id);
  });

  it('pages the audit trail with limit and before_id', async () => {
    await create({ name: 'paged', effect: { route: 'auto', cache_mode: 'off' } });
    for (let p = 1; p <= 4; p++) await call('PATCH', '/flags/paged', { targeting: { percentage: p * 10 } });

    const first = (await call('GET', '/flags/paged/audit?limit=2')).body;
    expect(first.data.map((e: any) => e.after.targeting.percentage)).toEqual([40, 30]);
    expect(first).toMatchObject({ has_more: true, next_before_id: first.data[1].id });
    const second = (await call('GET', `/flags/paged/audit?limit=2&before_id=${first.next_before_id}`)).body;
    expect(second.data.map((e: any) => e.after.targeting.percentage)).toEqual([20, 10]);
    const third = (await call('GET', `/flags/paged/audit?limit=2&before_id=${second.next_before_id}`)).body;
    expect(third.data.map((e: any) => e.action)).toEqual(['create']);
    expect(third).toMatchObject({ has_more: false, next_before_id: null });

    expect(await call('GET', '/flags/paged/audit?limit=0')).toMatchObject({ status: 400, body: { param: 'limit' } });
    expect(await call('GET', '/flags/paged/audit?limit=abc')).toMatchObject({ status: 400, body: { param: 'limit' } });
    expect(await call('GET', '/flags/paged/audit?before_id=-1')).toMatchObject({ status: 400, body: { param: 'before_id' } });
    expect((await call('GET', '/flags/never-existed/audit')).status).toBe(404);
  });

  it('GET /flags-audit lists every flag\'s changes, newest first, optionally for one flag', async () => {
    const all = (await call('GET', '/flags-audit?limit=1000')).body.data as Array<{ id: number; flag: string }>;
    expect(all.length).toBeGreaterThan(5);
    expect(all.map((e) => e.id)).toEqual([...all.map((e) => e.id)].sort((a, b) => b - a));
    expect(new Set(all.map((e) => e.flag))).toEqual(new Set(['canary-large', 'dup', 'ramp', 'temp', 'audited', 'paged']));
    const one = (await call('GET', '/flags-audit?flag=ramp')).body.data as Array<{ flag: string }>;
    expect(one.length).toBe(4);
    expect(one.every((e) => e.flag === 'ramp')).toBe(true);
    const two = (await call('GET', '/flags-audit?limit=2')).body;
    expect(two.data.map((e: { id: number }) => e.id)).toEqual(all.slice(0, 2).map((e) => e.id));
  });

  it('answers only admin keys (the admin hook)', async () => {
    expect((await call('GET', '/flags', undefined, 'tg-api-secret')).status).toBe(403);
  });
});
