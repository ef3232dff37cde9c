/**
 * The management API under /admin/v1 (admin keys only; errors as RFC 7807 problem+json): the
 * admin scope every capability's admin routes are registered in, and tenants and API keys with
 * their policies. Secrets are returned once, on creation; listings show only prefixes.
 */
import type { FastifyInstance } from 'fastify';
import type { Authenticator } from '../../auth/authenticator.js';
import type { KeyService } from '../../auth/key-service.js';
import { extractKey, parseDuration } from '../../auth/keys.js';
import { GatewayError } from '../../errors.js';
import { DATE_RANGE_TEXT, MAX_DATE_MS, isDateInRange, isoOrNull } from '../../util/time.js';
import { parsePolicyOverride } from '../../metering/policy.js';
import { type ApiKeyRecord, RecordConflict, RecordNotFound, type Records, type Tenant } from '../../storage/types.js';

export interface TenantRoutesOptions {
  records: Records;
  keys: KeyService;
  authenticator: Authenticator;
}

/** Stored times never fail a listing: out of range is clamped, not a number is null (src/util/time.ts). */
const iso = isoOrNull;

export function tenantJson(t: Tenant) {
  return { id: t.id, object: 'tenant', name: t.name, tier: t.tier, metadata: t.metadata, policy: t.policy, created_at: iso(t.createdAt) };
}

export function keyJson(k: ApiKeyRecord) {
  return {
    id: k.id,
    object: 'api_key',
    tenant_id: k.tenantId,
    name: k.name,
    kind: k.kind,
    prefix: k.prefix,
    tier: k.tier,
    allowed_models: k.allowedModels,
    user_id: k.userId,
    policy: k.policy,
    created_at: iso(k.createdAt),
    expires_at: iso(k.expiresAt),
    revoked_at: iso(k.revokedAt),
    last_used_at: iso(k.lastUsedAt),
  };
}

const idParams = { type: 'object', properties: { id: { type: 'string', minLength: 1, maxLength: 128 } } } as const;
const metadata = { type: 'object' } as const;
const tenantCreate = {
  type: 'object',
  required: ['name'],
  additionalProperties: false,
  properties: {
    id: { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,64}$' },
    name: { type: 'string', minLength: 1, maxLength: 200 },
    tier: { type: 'string', minLength: 1 },
    metadata,
  },
} as const;
const tenantPatch = {
  type: 'object',
  additionalProperties: false,
  properties: { name: tenantCreate.properties.name, tier: tenantCreate.properties.tier, metadata },
} as const;
const expiry = {
  expires_at: { type: ['string', 'integer', 'null'] },
  expires_in: { type: 'string', maxLength: 32 },
} as const;
const keyCreate = {
  type: 'object',
  required: ['tenant_id'],
  additionalProperties: false,
  properties: {
    tenant_id: { type: 'string', minLength: 1 },
    name: { type: 'string', minLength: 1, maxLength: 200 },
    kind: { type: 'string', enum: ['api', 'admin'] },
    tier: { type: 'string', minLength: 1 },
    allowed_models: { type: ['array', 'null'], items: { type: 'string', minLength: 1 } },
    user_id: { type: ['string', 'null'], minLength: 1, maxLength: 256 },
    ...expiry,
  },
} as const;
const keyPatch = {
  type: 'object',
  additionalProperties: false,
  properties: {
    name: keyCreate.properties.name,
    tier: keyCreate.properties.tier,
    allowed_models: keyCreate.properties.allowed_models,
    user_id: keyCreate.properties.user_id,
    ...expiry,
  },
} as const;

/**
 * expires_at (ISO date or epoch seconds) or expires_in ("30d") -> epoch ms, null, or undefined
 * (absent). Either must land between 1970-01-01 and 9999-12-31 (a later date could not be shown,
 * and would break listings): 400 naming the field.
 */
function parseExpiry(body: { expires_at?: string | number | null; expires_in?: string }, now = Date.now()): number | null | undefined {
  if (body.expires_in !== undefined) {
    let ms: number;
    try {
      ms = now + parseDuration(body.expires_in);
    } catch (err) {
      throw new GatewayError('invalid_value', (err as Error).message, { param: 'expires_in' });
    }
    if (!isDateInRange(ms)) {
      throw new GatewayError('invalid_value', `expires_in '${body.expires_in.slice(0, 32)}' ends after 9999-12-31; give a shorter duration`, { param: 'expires_in' });
    }
    return ms;
  }
  if (body.expires_at === undefined || body.expires_at === null) return body.expires_at;
  const ms = typeof body.expires_at === 'number' ? body.expires_at * 1000 : Date.parse(body.expires_at);
  if (!Number.isFinite(ms)) throw new GatewayError('invalid_value', 'expires_at must be an ISO 8601 date or epoch seconds', { param: 'expires_at' });
  if (!isDateInRange(Math.floor(ms))) {
    throw new GatewayError('invalid_value', `expires_at must be a date ${DATE_RANGE_TEXT} (an ISO 8601 date, or epoch seconds up to ${Math.floor(MAX_DATE_MS / 1000)})`, {
      param: 'expires_at',
    });
  }
  return Math.floor(ms);
}

/** Storage errors -> 404/409. */
function storageError(err: unknown): never {
  if (err instanceof RecordNotFound) throw new GatewayError('not_found', err.message);
  if (err instanceof RecordConflict) throw new GatewayError('conflict', err.message);
  throw err;
}

/**
 * The admin scope: every route registered inside it (each capability's `adminRoutes`) answers
 * admin keys only, under /admin/v1.
 */
export async function adminScope(app: FastifyInstance, opts: { authenticator: Authenticator; register: (app: FastifyInstance) => Promise<void> }): Promise<void> {
  app.addHook('onRequest', async (request) => {
    const auth = await opts.authenticator.authenticate(extractKey(request.headers));
    if (auth.kind !== 'admin') throw new GatewayError('admin_required', 'This endpoint needs an admin key.');
  });
  await opts.register(app);
}

/** Tenants and API keys, and their policies. */
export async function tenantRoutes(app: FastifyInstance, opts: TenantRoutesOptions): Promise<void> {
  const { records, keys, authenticator } = opts;

  app.get('/tenants', async () => ({ object: 'list', data: (await records.listTenants()).map(tenantJson) }));

  app.post<{ Body: { id?: string; name: string; tier?: string; metadata?: Record<string, unknown> } }>(
    '/tenants',
    { schema: { body: tenantCreate } },
    async (request, reply) => {
      const tenant = await keys.createTenant(request.body).catch(storageError);
      reply.code(201);
      return tenantJson(tenant);
    },
  );

  app.get<{ Params: { id: string } }>('/tenants/:id', { schema: { params: idParams } }, async (request) => {
    const t = await records.getTenant(request.params.id);
    if (!t) throw new GatewayError('not_found', `tenant '${request.params.id}' not found`);
    return tenantJson(t);
  });

  app.patch<{ Params: { id: string }; Body: { name?: string; tier?: string; metadata?: Record<string, unknown> } }>(
    '/tenants/:id',
    { schema: { params: idParams, body: tenantPatch } },
    async (request) => {
      if (request.body.tier !== undefined) keys.checkTier(request.body.tier, 'tier');
      return tenantJson(await records.updateTenant(request.params.id, request.body).catch(storageError));
    },
  );

  app.delete<{ Params: { id: string } }>('/tenants/:id', { schema: { params: idParams } }, async (request) => {
    const t = await records.getTenant(request.params.id);
    if (!t) throw new GatewayError('not_found', `tenant '${request.params.id}' not found`);
    await records.deleteTenant(t.id);
    authenticator.invalidate();
    return { id: t.id, object: 'tenant', deleted: true };
  });

  // Policies: overrides of the tier's limits and budgets. Every cached key may carry the tenant's
  // policy, so a tenant change drops the whole auth cache, in every process (the change bus).
  app.put<{ Params: { id: string }; Body: unknown }>('/tenants/:id/policy', { schema: { params: idParams } }, async (request) => {
    const policy = parsePolicyOverride(request.body, 'tenant');
    const t = await records.updateTenant(request.params.id, { policy }).catch(storageError);
    authenticator.invalidate();
    return tenantJson(t);
  });

  app.delete<{ Params: { id: string } }>('/tenants/:id/policy', { schema: { params: idParams } }, async (request) => {
    const t = await records.updateTenant(request.params.id, { policy: null }).catch(storageError);
    authenticator.invalidate();
    return tenantJson(t);
  });

  app.put<{ Params: { id: string }; Body: unknown }>('/keys/:id/policy', { schema: { params: idParams } }, async (request) => {
    const policy = parsePolicyOverride(request.body, 'key');
    const k = await records.updateKey(request.params.id, { policy }).catch(storageError);
    authenticator.invalidate(k.id);
    return keyJson(k);
  });

  app.delete<{ Params: { id: string } }>('/keys/:id/policy', { schema: { params: idParams } }, async (request) => {
    const k = await records.updateKey(request.params.id, { policy: null }).catch(storageError);
    authenticator.invalidate(k.id);
    return keyJson(k);
  });

  app.get<{ Querystring: { tenant_id?: string; include_revoked?: string } }>('/keys', async (request) => {
    const list = await records.listKeys({
      ...(request.query.tenant_id ? { tenantId: request.query.tenant_id } : {}),
      includeRevoked: request.query.include_revoked === 'true',
    });
    return { object: 'list', data: list.map(keyJson) };
  });

  app.post<{
    Body: {
      tenant_id: string;
      name?: string;
      kind?: 'api' | 'admin';
      tier?: string;
      allowed_models?: string[] | null;
      user_id?: string | null;
      expires_at?: string | number | null;
      expires_in?: string;
    };
  }>('/keys', { schema: { body: keyCreate }, config: { idempotency: false } }, async (request, reply) => {
    const b = request.body;
    const created = await keys.createKey({
      tenantId: b.tenant_id,
      ...(b.name !== undefined ? { name: b.name } : {}),
      ...(b.kind !== undefined ? { kind: b.kind } : {}),
      ...(b.tier !== undefined ? { tier: b.tier } : {}),
      allowedModels: b.allowed_models ?? null,
      userId: b.user_id ?? null,
      expiresAt: parseExpiry(b) ?? null,
    });
    reply.code(201);
    return { ...keyJson(created.record), key: created.secret };
  });

  app.get<{ Params: { id: string } }>('/keys/:id', { schema: { params: idParams } }, async (request) => {
    const k = await records.getKey(request.params.id);
    if (!k) throw new GatewayError('not_found', `key '${request.params.id}' not found`);
    return keyJson(k);
  });

  app.patch<{
    Params: { id: string };
    Body: { name?: string; tier?: string; allowed_models?: string[] | null; user_id?: string | null; expires_at?: string | number | null; expires_in?: string };
  }>('/keys/:id', { schema: { params: idParams, body: keyPatch } }, async (request) => {
    const b = request.body;
    const patch: Parameters<Records['updateKey']>[1] = {};
    if (b.name !== undefined) patch.name = b.name;
    if (b.tier !== undefined) {
      keys.checkTier(b.tier, 'tier');
      patch.tier = b.tier;
    }
    if (b.allowed_models !== undefined) patch.allowedModels = b.allowed_models === null ? null : keys.canonicalModels(b.allowed_models);
    if (b.user_id !== undefined) patch.userId = b.user_id;
    const expiresAt = parseExpiry(b);
    if (expiresAt !== undefined) patch.expiresAt = expiresAt;
    const updated = await records.updateKey(request.params.id, patch).catch(storageError);
    authenticator.invalidate(updated.id);
    return keyJson(updated);
  });

  const revoke = async (id: string) => {
    const k = await records.revokeKey(id).catch(storageError);
    authenticator.invalidate(k.id);
    return keyJson(k);
  };
  app.delete<{ Params: { id: string } }>('/keys/:id', { schema: { params: idParams } }, (request) => revoke(request.params.id));
  app.post<{ Params: { id: string } }>('/keys/:id/revoke', { schema: { params: idParams } }, (request) => revoke(request.params.id));
}
