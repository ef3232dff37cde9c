/**
 * Stage 3: the requested model (name or alias) -> the ordered chain of deployments. Deployments
 * on a provider that a kill switch disables are left out of the chain (skipped like an open
 * breaker). Fails with 404 model_not_found, 403 model_not_allowed, 400 when the model's type does
 * not fit the route, or 503 model_disabled when kill switches leave no deployment.
 */
import { GatewayError } from '../../errors.js';
import type { KillSwitches } from '../../metering/kill-switches.js';
import type { CatalogModel, Deployment, ModelCatalog } from '../../routing/catalog.js';
import type { RequestContext } from '../context.js';

/** The model's chain without the deployments of disabled providers; 503 when none is left. */
function liveChain(model: CatalogModel, killSwitches: Pick<KillSwitches, 'disabledProvider'>): Deployment[] {
  if (!model.deployments.some((d) => killSwitches.disabledProvider(d.providerId))) return model.deployments; // the usual case
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

export function routeStage(opts: { catalog: ModelCatalog; killSwitches?: Pick<KillSwitches, 'disabledProvider'> }) {
  return function route(ctx: RequestContext): void {
    const requested = ctx.body.model;
    const model = opts.catalog.resolve(requested);
    if (!model) {
      throw new GatewayError('model_not_found', `The model '${requested}' does not exist.`, { param: 'model' });
    }
    const allowed = ctx.auth?.allowedModels;
    if (allowed && !allowed.has(model.name)) {
      throw new GatewayError('model_not_allowed', `This API key may not use the model '${requested}'.`, { param: 'model' });
    }
    const want = ctx.operation === 'chat' ? 'chat' : 'embedding';
    if (model.type !== want) {
      throw new GatewayError(
        'invalid_value',
        `The model '${requested}' is ${model.type === 'chat' ? 'a chat' : 'an embedding'} model and cannot serve ${ctx.route}.`,
        { param: 'model' },
      );
    }
    ctx.model = model;
    ctx.chain = opts.killSwitches ? liveChain(model, opts.killSwitches) : model.deployments;
  };
}
