/**
 * Shadow traffic (src/routing/shadow.ts): answered requests of a route with a shadow candidate
 * are mirrored to it in the background and the pair compared (the settle step `shadow`), with
 * the report in the admin API.
 */
import { shadowRoutes } from '../http/routes/shadow.js';
import type { Embedder } from '../cache/types.js';
import { createEmbedder } from '../cache/index.js';
import type { RequestContext } from '../pipeline/context.js';
import { ShadowService, completionText, shadowRoutesOf } from '../routing/shadow.js';
import { type Capability, routes } from './capability.js';
import type { Core } from './core.js';

/** Hands a tiered route's answered request to the shadow service (it samples and calls in the background). */
function mirror(ctx: RequestContext, shadow: Pick<ShadowService, 'maybeMirror'>, latencyMs: number): void {
  const route = ctx.routing?.route;
  if (!route?.config.shadow || !ctx.auth || ctx.status !== 200 || ctx.cache?.served || !ctx.servedBy || ctx.streamError || ctx.clientAborted) return;
  if (ctx.operation !== 'chat') return;
  const result = ctx.result;
  const text = ctx.answerText ?? (result?.kind === 'chat' ? completionText(result.body) : '');
  shadow.maybeMirror({
    requestId: ctx.id,
    eventId: ctx.eventId,
    tenantId: ctx.auth.tenantId,
    keyId: ctx.auth.keyId,
    userId: ctx.endUser ?? '',
    route: route.name,
    body: ctx.body,
    primary: {
      model: ctx.servedBy.model,
      latencyMs,
      promptTokens: ctx.usage?.prompt_tokens ?? 0,
      completionTokens: ctx.usage?.completion_tokens ?? 0,
      costPico: ctx.costPico ?? 0,
      text,
    },
  });
}

export async function shadowCapability(core: Core, deps: { embedder: Embedder | undefined }): Promise<Capability> {
  const { config, storage, catalog, log } = core;
  const configured = shadowRoutesOf(config.routes);
  const shadow = new ShadowService({
    routes: configured,
    catalog,
    counters: core.counters,
    store: storage.shadow,
    ledger: core.ledger,
    // The answers' similarity: the cache's embedder, or the configured one when the cache is off.
    embedder: deps.embedder ?? (Object.keys(configured).length > 0 ? await createEmbedder(config.cache.semantic.embedder, catalog) : undefined),
    log,
    defaultMaxOutputTokens: config.metering.defaultMaxOutputTokens,
  });
  return {
    name: 'shadow',
    settle: { shadow: (ctx, settled) => mirror(ctx, shadow, settled.latencyMs) },
    adminRoutes: [routes(shadowRoutes, { shadow, store: storage.shadow, routes: configured })],
    // Shadow calls in flight write their pair and ledger event at their end.
    close: (graceMs) => shadow.drain(graceMs),
  };
}
