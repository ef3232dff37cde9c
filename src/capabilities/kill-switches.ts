/**
 * Kill switches (src/metering/kill-switches.ts): the kill switch stage, the admin API, and the
 * bus message that makes every process reload its snapshot when a switch changes.
 */
import type { Authenticator } from '../auth/authenticator.js';
import { killSwitchRoutes } from '../http/routes/kill-switches.js';
import { KillSwitches } from '../metering/kill-switches.js';
import { before } from '../pipeline/pipeline.js';
import { killSwitchStage } from '../pipeline/stages/kill-switch.js';
import { type Capability, routes } from './capability.js';
import type { Core } from './core.js';

export interface KillSwitchCapability extends Capability {
  readonly killSwitches: KillSwitches;
}

export async function killSwitchCapability(core: Core, deps: { authenticator: Authenticator }): Promise<KillSwitchCapability> {
  const { config, storage, catalog, log } = core;
  const killSwitches = new KillSwitches({
    records: storage.records,
    refreshMs: config.killSwitches.refreshMs,
    resolveModel: (name) => catalog.resolve(name)?.name,
    providers: Object.keys(config.providers),
    log,
    onChange: () => void storage.bus.publish({ kind: 'kill-switches' }),
  });
  await killSwitches.start(); // stopped by drain
  return {
    name: 'kill switches',
    killSwitches,
    stages: { 'kill switch': before(killSwitchStage({ killSwitches, catalog })) },
    adminRoutes: [routes(killSwitchRoutes, { killSwitches, authenticator: deps.authenticator })],
    messages: {
      'kill-switches': () => void killSwitches.refresh().catch((err: unknown) => log.warn({ err }, 'could not reload kill switches')),
    },
    async drain() {
      killSwitches.stop();
    },
  };
}
