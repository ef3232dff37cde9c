/**
 * Auth: API keys -> tenant, user, tier and policies (src/auth/). The authenticate stage, the
 * keys' last-used time, the tenants and keys admin API, and the bus message that drops a key
 * from every process's auth cache when it changes.
 */
import { Authenticator } from '../auth/authenticator.js';
import { type BootstrapResult, KeyService, bootstrapKeys } from '../auth/key-service.js';
import { LastUsed } from '../auth/last-used.js';
import { tenantRoutes } from '../http/routes/admin.js';
import { before } from '../pipeline/pipeline.js';
import { authenticateStage } from '../pipeline/stages/authenticate.js';
import type { BusMessage } from '../storage/change-bus.js';
import { type Capability, routes } from './capability.js';
import type { Core } from './core.js';

/** A key (or every key: no keyId) changed: every process drops it from its auth cache. */
interface AuthChanged extends BusMessage {
  kind: 'auth';
  keyId?: string | undefined;
}

export interface AuthCapability extends Capability {
  readonly authenticator: Authenticator;
  readonly keys: KeyService;
  /** Creates the admin and demo keys on first start; undefined when they already exist. */
  bootstrap(): Promise<BootstrapResult | undefined>;
}

export function authCapability(core: Core): AuthCapability {
  const { config, storage, catalog } = core;
  const authenticator = new Authenticator({
    records: storage.records,
    ttlMs: config.auth.cacheTtlMs,
    maxStaleMs: config.auth.maxStaleMs,
    // A read a request waits for: bounded like any PostgreSQL read on the request path (SQLite answers at once).
    ...(config.storage.kind === 'distributed' ? { lookupTimeoutMs: config.storage.postgresQueryTimeoutMs } : {}),
    tierModels: Object.fromEntries(Object.entries(config.tiers).map(([name, t]) => [name, t.models])),
    onInvalidate: (keyId) => void storage.bus.publish<AuthChanged>({ kind: 'auth', keyId }),
  });
  const keys = new KeyService({ records: storage.records, tiers: Object.keys(config.tiers), resolveModel: (name) => catalog.resolve(name)?.name });
  const lastUsed = new LastUsed(storage.records, core.log);
  return {
    name: 'auth',
    authenticator,
    keys,
    bootstrap: () => bootstrapKeys(storage.records, keys),
    stages: { authenticate: before(authenticateStage({ authenticator })) },
    settle: {
      'key last used': (ctx) => {
        if (ctx.auth) lastUsed.touch(ctx.auth.keyId, ctx.receivedAt);
      },
    },
    adminRoutes: [routes(tenantRoutes, { records: storage.records, keys, authenticator })],
    messages: {
      auth: (m) => {
        const keyId = (m as AuthChanged).keyId;
        authenticator.invalidateLocal(typeof keyId === 'string' ? keyId : undefined);
      },
    },
  };
}
