/**
 * The cache's HTTP surface:
 * - `POST /v1/feedback` (API key): a client's verdict on a request's answer, kept (A/B experiment
 *   results average it per variant). A bad verdict on an answer served from (or stored in) the
 *   cache removes or demotes its entry (src/cache/service.ts). On a route with
 *   `semantic.maxErrorRate`, a verdict on a semantic hit also feeds its entry's error estimate
 *   (src/cache/verify.ts), once per request.
 * - `GET /admin/v1/cache` and `POST /admin/v1/cache/invalidate` (admin key, registered under the
 *   admin prefix by admin.ts).
 */
import type { FastifyInstance } from 'fastify';
import type { Authenticator } from '../../auth/authenticator.js';
import type { CacheService } from '../../cache/service.js';
import { GatewayError } from '../../errors.js';
import { formatUsd } from '../../metering/cost.js';
import type { KillSwitches } from '../../metering/kill-switches.js';
import type { FeedbackStore } from '../../routing/types.js';
import { apiCaller } from './api-caller.js';

export interface CacheRoutesOptions {
  cache: CacheService;
  authenticator: Authenticator;
  /** A switched-off key, tenant or gateway gives no feedback either (403 access_disabled). */
  killSwitches: Pick<KillSwitches, 'checkAccess'>;
  /** Where verdicts are kept (A/B experiment results read them). */
  store?: FeedbackStore;
}

const feedbackBody = {
  type: 'object',
  required: ['request_id', 'rating'],
  additionalProperties: false,
  properties: {
    request_id: { type: 'string', minLength: 1, maxLength: 200 },
    rating: { type: 'string', enum: ['good', 'bad'] },
    comment: { type: 'string', maxLength: 2000 },
  },
} as const;

export async function feedbackRoutes(app: FastifyInstance, opts: CacheRoutesOptions): Promise<void> {
  app.post<{ Body: { request_id: string; rating: 'good' | 'bad'; comment?: string } }>(
    '/v1/feedback',
    { schema: { body: feedbackBody } },
    async (request, reply) => {
      const auth = await apiCaller(request, opts.authenticator, opts.killSwitches);
      const { request_id: requestId, rating, comment } = request.body;
      await opts.store?.put({ tenantId: auth.tenantId, requestId, good: rating === 'good', comment: comment ?? '', at: Date.now() });
      const found = await opts.cache.feedback(auth.tenantId, requestId, rating === 'good');
      reply.header('x-request-id', request.id);
      return {
        object: 'feedback',
        request_id: requestId,
        rating,
        cache: found ? { outcome: found.record.outcome, action: found.action } : null,
      };
    },
  );
}

const invalidateBody = {
  type: 'object',
  additionalProperties: false,
  properties: {
    tenant_id: { type: 'string', minLength: 1, maxLength: 128 },
    route: { type: 'string', minLength: 1, maxLength: 256 },
    key_prefix: { type: 'string', minLength: 1, maxLength: 512 },
    all: { type: 'boolean' },
  },
} as const;

export async function adminCacheRoutes(app: FastifyInstance, opts: { cache: CacheService }): Promise<void> {
  app.get('/cache', async () => {
    const s = await opts.cache.stats();
    return {
      object: 'cache',
      enabled: opts.cache.enabled,
      exact_entries: s.exactEntries,
      semantic_entries: s.semanticEntries,
      in_flight: s.inFlight,
      guard_rejections: s.guardRejections,
      embedder: s.embedder,
      // Verified semantic caching (routes with semantic.maxErrorRate; in-memory, this process).
      verification: opts.cache.verificationStats().map((r) => ({
        route: r.route,
        max_error_rate: r.maxErrorRate,
        candidates: r.candidates,
        served: r.served,
        verified: r.verified,
        disagreements: r.disagreements,
        feedback_good: r.feedbackGood,
        feedback_bad: r.feedbackBad,
        verification_rate: r.verificationRate,
        observed_disagreement: r.observedDisagreement,
        estimated_error: r.estimatedError,
        error_bound: r.errorBound,
      })),
      // The judge for borderline candidates (routes with semantic.judge; in-memory, this process).
      judge: opts.cache.judgeStats().map((r) => ({
        route: r.route,
        model: r.model,
        calls: r.calls,
        cached_verdicts: r.cachedVerdicts,
        cost_usd: formatUsd(r.costPico),
      })),
    };
  });

  app.post<{ Body: { tenant_id?: string; route?: string; key_prefix?: string; all?: boolean } }>(
    '/cache/invalidate',
    { schema: { body: invalidateBody } },
    async (request) => {
      const { tenant_id: tenantId, route, key_prefix: keyPrefix, all } = request.body ?? {};
      const filtered = tenantId !== undefined || route !== undefined || keyPrefix !== undefined;
      if (filtered === (all === true)) {
        throw new GatewayError(
          'invalid_request',
          all ? "Give either filters or 'all': true, not both." : "Name what to invalidate: 'tenant_id', 'route', 'key_prefix', or 'all': true for everything.",
          { param: all ? 'all' : 'tenant_id' },
        );
      }
      const removed = await opts.cache.invalidate({
        ...(tenantId !== undefined ? { tenantId } : {}),
        ...(route !== undefined ? { route } : {}),
        ...(keyPrefix !== undefined ? { keyPrefix } : {}),
      });
      return { object: 'cache.invalidation', exact_removed: removed.exact, semantic_removed: removed.semantic };
    },
  );
}
