/**
 * Drift and abuse signals (per process; src/observability/drift.ts, abuse.ts): fed by settle,
 * read by /metrics, the admin API, the dashboard and alert rules. With an abuse kind set to
 * throttle, the abuse guard stage refuses a throttled key or user.
 */
import type { Authenticator } from '../auth/authenticator.js';
import type { Embedder } from '../cache/types.js';
import { type DashboardSignal } from '../http/routes/dashboard.js';
import { abuseSignals, driftSignals, signalRoutes } from '../http/routes/signals.js';
import { AbuseDetector } from '../observability/abuse.js';
import { DriftDetector } from '../observability/drift.js';
import { before } from '../pipeline/pipeline.js';
import { abuseGuardStage } from '../pipeline/stages/abuse-guard.js';
import { type Capability, routes } from './capability.js';
import type { Core } from './core.js';

export interface SignalsCapability extends Capability {
  readonly drift: DriftDetector;
  readonly abuse: AbuseDetector;
  /** What the dashboard shows of them. */
  dashboard(): { drift: DashboardSignal[]; abuse: DashboardSignal[] };
}

export function signalsCapability(
  core: Core,
  deps: { authenticator: Authenticator; embedder: Embedder | undefined; canonical: (name: string) => string | undefined },
): SignalsCapability {
  const { config, log, opts } = core;
  const clock = opts.signalsClock ? { now: opts.signalsClock } : {};
  const drift = new DriftDetector({
    config: config.drift,
    embedder: deps.embedder,
    embedderIsUpstream: config.cache.semantic.embedder.kind === 'deployment',
    isKnownRoute: (name) => deps.canonical(name) === name,
    log,
    ...clock,
  });
  drift.registerMetrics(core.metrics.registry);
  const abuse = new AbuseDetector({ config: config.abuse, ...clock });
  abuse.registerMetrics(core.metrics.registry);
  const a = config.abuse;
  const throttling = a.enabled && [a.action, a.tokenSpike.action, a.repeatedPrompts.action, a.longPrompts.action].includes('throttle');
  return {
    name: 'signals',
    drift,
    abuse,
    dashboard: () => ({ drift: driftSignals(drift), abuse: abuseSignals(abuse) }),
    stages: throttling ? { 'abuse guard': before(abuseGuardStage({ abuse })) } : {},
    settle: { drift: drift.observe, abuse: abuse.observe },
    routes: [routes(signalRoutes, { drift, driftConfig: config.drift, abuse, abuseConfig: config.abuse, authenticator: deps.authenticator })],
    close: () => drift.drain(), // sampled embeddings, before the cache closes its embedder
  };
}
