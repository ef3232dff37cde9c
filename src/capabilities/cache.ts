/**
 * The cache (src/cache/): exact and semantic, tenant-isolated, with single flight for identical
 * requests in flight, verified semantic hits and a judge for borderline ones. The cache stage
 * (which also remembers what it served, for feedback), the feedback API and the cache admin API,
 * and its metrics.
 */
import type { Authenticator } from '../auth/authenticator.js';
import { CacheJudge } from '../cache/judge.js';
import { createCache } from '../cache/index.js';
import { CacheMetrics } from '../cache/metrics.js';
import type { CacheService } from '../cache/service.js';
import { tenantShares } from '../config/cache-schema.js';
import { adminCacheRoutes, feedbackRoutes } from '../http/routes/cache.js';
import type { KillSwitches } from '../metering/kill-switches.js';
import type { StorageQuotas } from '../metering/storage-quotas.js';
import { cacheMiddleware } from '../pipeline/stages/cache.js';
import type { FeedbackStore } from '../routing/types.js';
import { type Capability, routes } from './capability.js';
import type { Core } from './core.js';

export interface CacheCapability extends Capability {
  readonly cache: CacheService;
}

export async function cacheCapability(
  core: Core,
  deps: { authenticator: Authenticator; killSwitches: KillSwitches; quotas: StorageQuotas },
): Promise<CacheCapability> {
  const { config, storage, catalog, log, opts } = core;
  const shares = tenantShares(config.cache);
  const stores = storage.cacheStores({
    maxEntries: config.cache.exact.maxEntries,
    maxBytes: config.cache.exact.maxBytes,
    maxEntriesPerTenant: shares.exactEntries,
    maxBytesPerTenant: shares.exactBytes,
    semanticEntriesPerTenant: shares.semanticEntries,
    ...(opts.cacheClock ? { now: opts.cacheClock } : {}),
  });
  const cache = await createCache({
    config,
    catalog,
    exact: await stores.exact(),
    semanticStore: stores.semantic,
    log,
    judge: new CacheJudge({ resolve: (name) => catalog.resolve(name), log }), // borderline semantic candidates (cache.semantic.judge)
    random: opts.random, // verified semantic caching's serve-or-verify draws (tests)
  });
  new CacheMetrics(core.metrics.registry, { verification: () => cache.verificationStats(), judge: () => cache.judgeStats() });
  // Feedback counts against the tenant's storage quota.
  const feedback: FeedbackStore = {
    async put(f) {
      await deps.quotas.checkFeedback(f.tenantId);
      await storage.feedback.put(f);
    },
  };
  return {
    name: 'cache',
    cache,
    stages: { cache: cacheMiddleware(cache) },
    routes: [routes(feedbackRoutes, { cache, authenticator: deps.authenticator, killSwitches: deps.killSwitches, store: feedback })],
    adminRoutes: [routes(adminCacheRoutes, { cache })],
    close: () => cache.close(),
  };
}
