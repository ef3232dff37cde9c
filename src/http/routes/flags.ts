/**
 * `/admin/v1/flags`: feature flags (src/routing/flags.ts) and their audit trail. A change made
 * here applies in this process at once, and in the others when they hear of it on the change bus
 * (or within `flags.refreshMs`). Registered under the admin prefix, whose hook has already
 * checked the admin key; the key's id is recorded as the actor of every change.
 *
 *   GET    /flags                 every flag, by name
 *   GET    /flags/:name
 *   POST   /flags                 201
 *   PATCH  /flags/:name           JSON merge patch: members left out are kept, null removes one
 *   DELETE /flags/:name
 *   GET    /flags/:name/audit     the flag's changes, newest first (?limit=&before_id=)
 *   GET    /flags-audit           every flag's changes, newest first (?limit=&before_id=&flag=)
 */
import type { FastifyInstance, FastifySchemaValidationError } from 'fastify';
import type { Authenticator } from '../../auth/authenticator.js';
import { extractKey } from '../../auth/keys.js';
import { GatewayError } from '../../errors.js';
import { isoOrNull } from '../../util/time.js';
import { CACHE_MODES } from '../../routing/flag-validation.js';
import type { FlagInput, FlagService, FlagUpdate } from '../../routing/flags.js';
import type { Flag, FlagAuditEntry, FlagEffect } from '../../routing/types.js';
import { RecordConflict, RecordNotFound } from '../../storage/types.js';
import { toGatewayError } from '../error-handler.js';
import { jsonPointerToParam } from '../../wire/validation-error.js';

export interface FlagRoutesOptions {
  flags: FlagService;
  authenticator: Authenticator;
}

const iso = (ms: number) => isoOrNull(ms);

/** A flag as the admin API shows it: absent targeting lists are null (no constraint), percentage defaults to 100. */
export function flagJson(f: Flag) {
  return {
    name: f.name,
    object: 'flag',
    description: f.description,
    enabled: f.enabled,
    targeting: {
      tenants: f.targeting.tenants ?? null,
      keys: f.targeting.keys ?? null,
      users: f.targeting.users ?? null,
      tiers: f.targeting.tiers ?? null,
      percentage: f.targeting.percentage ?? 100,
    },
    effect: {
      route: f.effect.route,
      model: f.effect.model ?? null,
      tiers: f.effect.tiers ?? null,
      cache_mode: f.effect.cacheMode ?? null,
    },
    created_at: iso(f.createdAt),
    updated_at: iso(f.updatedAt),
    updated_by: f.updatedBy,
  };
}

export function flagAuditJson(e: FlagAuditEntry) {
  return {
    id: e.id,
    object: 'flag_audit_entry',
    flag: e.flag,
    action: e.action,
    actor: e.actor,
    at: iso(e.at),
    before: e.before ? flagJson(e.before) : null,
    after: e.after ? flagJson(e.after) : null,
  };
}

/* ----------------------------------------- schemas ----------------------------------------- */

const nullable = <T extends { type: string }>(s: T) => ({ ...s, type: [s.type, 'null'] });
const idList = { type: 'array', maxItems: 10_000, items: { type: 'string', minLength: 1, maxLength: 256 } } as const;
const percentage = { type: 'number', minimum: 0, maximum: 100 } as const;
const modelName = { type: 'string', minLength: 1, maxLength: 256 } as const;
const tierMapping = { type: 'object', additionalProperties: { type: 'array', minItems: 1, items: modelName } } as const;
const cacheMode = { type: 'string', enum: CACHE_MODES } as const;
const description = { type: 'string', maxLength: 500 } as const;

const createBody = {
  type: 'object',
  required: ['name', 'effect'],
  additionalProperties: false,
  properties: {
    name: { type: 'string', minLength: 1 },
    description,
    enabled: { type: 'boolean' },
    targeting: {
      type: 'object',
      additionalProperties: false,
      properties: { tenants: idList, keys: idList, users: idList, tiers: idList, percentage },
    },
    effect: {
      type: 'object',
      required: ['route'],
      additionalProperties: false,
      properties: { route: modelName, model: modelName, tiers: tierMapping, cache_mode: cacheMode },
    },
  },
} as const;

const patchBody = {
  type: 'object',
  additionalProperties: false,
  properties: {
    description,
    enabled: { type: 'boolean' },
    targeting: {
      type: ['object', 'null'],
      additionalProperties: false,
      properties: {
        tenants: nullable(idList),
        keys: nullable(idList),
        users: nullable(idList),
        tiers: nullable(idList),
        percentage: nullable(percentage),
      },
    },
    effect: {
      type: 'object',
      additionalProperties: false,
      properties: {
        route: modelName,
        model: nullable(modelName),
        tiers: nullable(tierMapping),
        cache_mode: { type: ['string', 'null'], enum: [...CACHE_MODES, null] },
      },
    },
  },
} as const;

const nameParams = { type: 'object', properties: { name: { type: 'string', minLength: 1, maxLength: 128 } } } as const;

interface SnakeEffect {
  route?: string;
  model?: string | null;
  tiers?: Record<string, string[]> | null;
  cache_mode?: FlagEffect['cacheMode'] | null;
}
interface CreateBody {
  name: string;
  description?: string;
  enabled?: boolean;
  targeting?: FlagInput['targeting'];
  effect: SnakeEffect & { route: string };
}
type PatchBody = Omit<FlagUpdate, 'effect'> & { effect?: SnakeEffect };
interface PageQuery {
  limit?: string;
  before_id?: string;
  flag?: string;
}

/**
 * Schema errors named by field: an unknown member is "Unknown parameter: 'effect.foo'"; the rest
 * are rendered like every other validation error (src/http/error-handler.ts).
 */
function schemaError(errors: FastifySchemaValidationError[]): Error {
  const e = errors[0];
  if (e?.keyword === 'additionalProperties') {
    const parent = jsonPointerToParam(e.instancePath);
    const member = String(e.params['additionalProperty']);
    const param = parent ? `${parent}.${member}` : member;
    return new GatewayError('invalid_value', `Unknown parameter: '${param}'.`, { param });
  }
  return toGatewayError(Object.assign(new Error('invalid request'), { validation: errors }), 0) ?? new GatewayError('invalid_request', 'Invalid request.');
}

/** `cache_mode` (the API's) -> `cacheMode` (the service's); other members as they are. */
function effectIn<E extends SnakeEffect>(e: E): Omit<E, 'cache_mode'> & { cacheMode?: FlagEffect['cacheMode'] | null } {
  const { cache_mode, ...rest } = e;
  return cache_mode === undefined ? rest : { ...rest, cacheMode: cache_mode };
}

function pageParam(value: string | undefined, name: string, max: number): number | undefined {
  if (value === undefined || value === '') return undefined;
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 1 || n > max) {
    throw new GatewayError('invalid_value', `Invalid value for '${name}': expected an integer between 1 and ${max}.`, { param: name });
  }
  return n;
}

const MAX_PAGE = 1_000;
const DEFAULT_PAGE = 100;

/** Storage errors -> 404 / 409. */
function storageError(err: unknown): never {
  if (err instanceof RecordNotFound) throw new GatewayError('not_found', err.message);
  if (err instanceof RecordConflict) throw new GatewayError('conflict', `${err.message}; change it with PATCH /admin/v1/flags/{name}.`);
  throw err;
}

/* ------------------------------------------ routes ----------------------------------------- */

export async function flagRoutes(app: FastifyInstance, opts: FlagRoutesOptions): Promise<void> {
  const { flags, authenticator } = opts;
  // Already authenticated by the admin hook (a cache hit): who makes the change.
  const actor = async (headers: Record<string, string | string[] | undefined>) => (await authenticator.authenticate(extractKey(headers))).keyId;

  const page = async (query: PageQuery, flag: string | undefined) => {
    const limit = pageParam(query.limit, 'limit', MAX_PAGE) ?? DEFAULT_PAGE;
    const beforeId = pageParam(query.before_id, 'before_id', Number.MAX_SAFE_INTEGER);
    // One more than asked says whether there is another page.
    const entries = await flags.audit({ limit: limit + 1, ...(flag !== undefined ? { flag } : {}), ...(beforeId !== undefined ? { beforeId } : {}) });
    const data = entries.slice(0, limit).map(flagAuditJson);
    const hasMore = entries.length > limit;
    return { object: 'list', data, has_more: hasMore, next_before_id: hasMore ? (data.at(-1)?.id ?? null) : null };
  };

  app.get('/flags', async () => ({ object: 'list', data: (await flags.list()).map(flagJson) }));

  app.get<{ Params: { name: string } }>('/flags/:name', { schema: { params: nameParams } }, async (request) => {
    const flag = await flags.get(request.params.name);
    if (!flag) throw new GatewayError('not_found', `flag '${request.params.name}' not found`);
    return flagJson(flag);
  });

  app.post<{ Body: CreateBody }>('/flags', { schema: { body: createBody }, schemaErrorFormatter: schemaError }, async (request, reply) => {
    const body = request.body;
    const input: FlagInput = { ...body, effect: effectIn(body.effect) as FlagEffect };
    const created = await flags.create(input, await actor(request.headers)).catch(storageError);
    reply.code(201);
    return flagJson(created);
  });

  app.patch<{ Params: { name: string }; Body: PatchBody }>(
    '/flags/:name',
    { schema: { params: nameParams, body: patchBody }, schemaErrorFormatter: schemaError },
    async (request) => {
      const { effect, ...rest } = request.body;
      const patch: FlagUpdate = { ...rest, ...(effect !== undefined ? { effect: effectIn(effect) } : {}) };
      return flagJson(await flags.update(request.params.name, patch, await actor(request.headers)).catch(storageError));
    },
  );

  app.delete<{ Params: { name: string } }>('/flags/:name', { schema: { params: nameParams } }, async (request) => {
    await flags.delete(request.params.name, await actor(request.headers)).catch(storageError);
    return { name: request.params.name, object: 'flag', deleted: true };
  });

  app.get<{ Params: { name: string }; Querystring: PageQuery }>('/flags/:name/audit', { schema: { params: nameParams } }, async (request) => {
    const { name } = request.params;
    const result = await page(request.query, name);
    // A deleted flag keeps its trail; a name that never existed is a 404, not an empty list.
    if (result.data.length === 0 && request.query.before_id === undefined && !(await flags.get(name))) {
      throw new GatewayError('not_found', `flag '${name}' not found`);
    }
    return result;
  });

  app.get<{ Querystring: PageQuery }>('/flags-audit', async (request) => page(request.query, request.query.flag || undefined));
}
