/**
 * Routing (src/routing/): model names and tiered routes to chains of deployments, feature flags
 * and A/B experiments. The route stage, the flags and experiments admin API, and the bus message
 * that makes every process reload its flags.
 */
import type { Authenticator } from '../auth/authenticator.js';
import { experimentRoutes } from '../http/routes/experiments.js';
import { flagRoutes } from '../http/routes/flags.js';
import type { KillSwitches } from '../metering/kill-switches.js';
import { before } from '../pipeline/pipeline.js';
import { routeStage } from '../pipeline/stages/route.js';
import { Experiments } from '../routing/experiments.js';
import { FlagService } from '../routing/flags.js';
import { Router } from '../routing/router.js';
import { type Capability, routes } from './capability.js';
import type { Core } from './core.js';

export interface RoutingCapability extends Capability {
  readonly router: Router;
  readonly flags: FlagService;
  /** The public name of a model, alias or route (undefined when unknown). */
  canonical(name: string): string | undefined;
}

export async function routingCapability(core: Core, deps: { authenticator: Authenticator; killSwitches: KillSwitches }): Promise<RoutingCapability> {
  const { config, storage, catalog, breakers, log } = core;
  const { killSwitches } = deps;
  const router = new Router(
    config.routes,
    catalog,
    breakers,
    (m) => killSwitches.modelAvailable(m),
    (providerId) => killSwitches.disabledProvider(providerId) !== undefined,
  );
  const canonical = (name: string) => router.resolve(name)?.name ?? catalog.resolve(name)?.name;
  const flags = new FlagService({
    store: storage.flags,
    refreshMs: config.flags.refreshMs,
    log,
    knownRoutes: (name) => router.resolve(name) !== undefined,
    knownModel: (name) => catalog.resolve(name) !== undefined,
    tierNamesOf: (name) => router.resolve(name)?.tiers.map((t) => t.name),
    resolveName: canonical,
    onChange: () => void storage.bus.publish({ kind: 'flags' }),
  });
  await flags.start(); // stopped by drain
  const experiments = new Experiments(config.experiments, { resolve: canonical });
  return {
    name: 'routing',
    router,
    flags,
    canonical,
    stages: { route: before(routeStage({ catalog, killSwitches, router, flags, experiments })) },
    adminRoutes: [
      routes(flagRoutes, { flags, authenticator: deps.authenticator }),
      routes(experimentRoutes, { experiments, results: storage.experimentResults, ledgerFlush: () => core.ledger.flush() }),
    ],
    messages: {
      flags: () => void flags.refresh().catch((err: unknown) => log.warn({ err }, 'could not reload flags')),
    },
    async drain() {
      flags.stop();
    },
  };
}
