/**
 * The route stage: the requested model (name or alias) -> the ordered chain of deployments. First an A/B
 * experiment on the route may assign a variant (its model, system prompt, parameters), then
 * feature flags may switch the model, the tier mapping or the cache mode; a tiered route's
 * router picks the tier (x-tollgate-tier). Deployments
 * on a provider that a kill switch disables are left out of the chain (skipped like an open
 * breaker). Fails with 404 model_not_found, 403 model_not_allowed, 400 when the model's type does
 * not fit the route, or 503 model_disabled when kill switches leave no deployment.
 */
import { GatewayError } from '../../errors.js';
import type { KillSwitches } from '../../metering/kill-switches.js';
import type { CatalogModel, Deployment, ModelCatalog } from '../../routing/catalog.js';
import { type Experiments, applyVariant } from '../../routing/experiments.js';
import { type FlagService, mergeEffects } from '../../routing/flags.js';
import { type Router, type Tier, maxPrice } from '../../routing/router.js';
import type { Requester } from '../../routing/types.js';
import type { RequestContext } from '../context.js';

/** The model's chain without the deployments of disabled providers; 503 when none is left. */
function liveChain(model: CatalogModel, killSwitches: Pick<KillSwitches, 'disabledProvider'> | undefined): Deployment[] {
  if (!killSwitches || !model.deployments.some((d) => killSwitches.disabledProvider(d.providerId))) return model.deployments; // the usual case
  const chain = model.deployments.filter((d) => !killSwitches.disabledProvider(d.providerId));
  if (chain.length > 0 || model.deployments.length === 0) return chain;
  const seen = new Set<string>();
  const why = model.deployments
    .filter((d) => !seen.has(d.providerId) && seen.add(d.providerId))
    .map((d) => {
      const s = killSwitches.disabledProvider(d.providerId)!;
      return `provider '${d.providerId}' is disabled by a kill switch (${s.id}): ${s.reason}`;
    });
  throw new GatewayError('model_disabled', `Every deployment of model '${model.name}' is disabled: ${why.join('; ')}`, { param: 'model' });
}

export interface RouteStageOptions {
  catalog: ModelCatalog;
  killSwitches?: Pick<KillSwitches, 'disabledProvider' | 'checkModel'>;
  /** Tiered routes (config `routes`). */
  router?: Router;
  /** Feature flags' effects on routes and models. */
  flags?: Pick<FlagService, 'effectsFor'>;
  /** A/B experiments (config `experiments`). */
  experiments?: Pick<Experiments, 'forRoute' | 'assign'>;
}

function requesterOf(ctx: RequestContext): Requester {
  const auth = ctx.auth;
  return { tenantId: auth?.tenantId ?? '', tier: auth?.tier ?? '', keyId: auth?.keyId ?? '', userId: ctx.endUser ?? null };
}

export function routeStage(opts: RouteStageOptions) {
  const { catalog, router } = opts;
  return function route(ctx: RequestContext): void {
    let requested = ctx.body.model;
    const requester = ctx.auth ? requesterOf(ctx) : undefined;
    const allowed = ctx.auth?.allowedModels;
    const known = catalog.resolve(requested)?.name ?? router?.resolve(requested)?.name;
    if (allowed && known !== undefined && !allowed.has(known)) {
      throw new GatewayError('model_not_allowed', `This API key may not use the model '${requested}'.`, { param: 'model' });
    }

    // An A/B experiment on the requested route or model: the variant's model, system prompt, parameters.
    if (requester && ctx.operation === 'chat' && opts.experiments) {
      const experiment = opts.experiments.forRoute(router?.resolve(requested)?.name ?? catalog.resolve(requested)?.name ?? requested);
      if (experiment) {
        const a = opts.experiments.assign(experiment.id, requester);
        const variant = experiment.variants[a.index];
        if (variant) {
          ctx.body = applyVariant(ctx.body, variant);
          if (variant.model) requested = variant.model;
          ctx.experiment = { experiment: a.experiment, variant: a.variant };
          ctx.extraHeaders['x-tollgate-experiment'] = `${a.experiment}:${a.variant}`;
        }
      }
    }

    // Feature flags: a model, a tier mapping or a cache mode for this route.
    let tiersOverride: Record<string, string[]> | undefined;
    if (requester && opts.flags) {
      const name = router?.resolve(requested)?.name ?? catalog.resolve(requested)?.name ?? requested;
      const effects = opts.flags.effectsFor(name, requester);
      if (effects.length > 0) {
        const merged = mergeEffects(effects);
        if (merged.model) requested = merged.model;
        if (merged.tiers) tiersOverride = merged.tiers;
        if (merged.cacheMode) ctx.cacheMode = merged.cacheMode;
      }
    }

    const tiered = router?.resolve(requested);
    if (tiered && router) {
      if (ctx.operation !== 'chat') {
        throw new GatewayError('invalid_value', `The route '${requested}' serves chat completions, not ${ctx.route}.`, { param: 'model' });
      }
      const tiers = tiersOverride ? router.withTiers(tiered, tiersOverride) : tiered.tiers;
      // A flag's mapping may bring other models: reserve at their worst-case price.
      const routeModel = tiersOverride ? { ...tiered.model, price: maxPrice(tiers.flatMap((t) => t.models)) } : tiered.model;
      const decision = router.decide(tiered, ctx.body, requester ?? { tenantId: '', tier: '', keyId: '', userId: null }, tiers);
      ctx.routing = decision;
      ctx.model = routeModel;
      const tier = decision.tiers[decision.tier] as Tier;
      if (tier.deployments.length === 0) {
        throw new GatewayError('model_disabled', `Every model of route '${tiered.name}' is disabled by a kill switch.`, { param: 'model' });
      }
      ctx.chain = liveChain({ ...tiered.model, deployments: tier.deployments }, opts.killSwitches);
      ctx.extraHeaders['x-tollgate-tier'] = tier.name;
      return;
    }

    const model = catalog.resolve(requested);
    if (!model) {
      throw new GatewayError('model_not_found', `The model '${requested}' does not exist.`, { param: 'model' });
    }
    const want = ctx.operation === 'chat' ? 'chat' : 'embedding';
    if (model.type !== want) {
      throw new GatewayError(
        'invalid_value',
        `The model '${requested}' is ${model.type === 'chat' ? 'a chat' : 'an embedding'} model and cannot serve ${ctx.route}.`,
        { param: 'model' },
      );
    }
    // An experiment's or a flag's model is switched off like an asked-for one (the kill switch stage saw only what was asked).
    if (requested !== ctx.body.model || ctx.experiment) opts.killSwitches?.checkModel(model.name);
    ctx.model = model;
    ctx.chain = liveChain(model, opts.killSwitches);
  };
}
