/**
 * The kill switch stage: right after authentication and before anything is reserved or called.
 * Refuses with 403 access_disabled (a global, tenant or key switch) or 503 model_disabled (a
 * switch on the requested model, resolved from a name or alias). Reads the in-memory snapshot of
 * src/metering/kill-switches.ts: no I/O. Provider switches are applied by the route stage.
 */
import type { KillSwitches } from '../../metering/kill-switches.js';
import type { ModelCatalog } from '../../routing/catalog.js';
import type { RequestContext } from '../context.js';

export function killSwitchStage(opts: { killSwitches: KillSwitches; catalog: ModelCatalog }) {
  const { killSwitches, catalog } = opts;
  return function checkKillSwitches(ctx: RequestContext): void {
    if (!ctx.auth) return;
    killSwitches.checkAccess(ctx.auth);
    // An unknown model is the route stage's 404.
    const model = catalog.resolve(ctx.body.model);
    if (model) killSwitches.checkModel(model.name);
  };
}
