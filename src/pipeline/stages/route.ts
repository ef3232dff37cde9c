/**
 * Stage 4: the requested model (name or alias) -> the ordered chain of deployments. Fails with
 * 404 model_not_found, 403 model_not_allowed, or 400 when the model's type does not fit the route.
 */
import { GatewayError } from '../../errors.js';
import type { ModelCatalog } from '../../routing/catalog.js';
import type { RequestContext } from '../context.js';

export function routeStage(opts: { catalog: ModelCatalog }) {
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
    ctx.chain = model.deployments;
  };
}
