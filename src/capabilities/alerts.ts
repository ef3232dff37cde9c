/**
 * Alert rules (src/observability/alerts.ts): evaluated by one process (distributed: the holder
 * of a lease in Redis) over live statistics, budgets, drift, abuse and open breakers; events
 * sent to the alert webhook, listed in the admin API, counted in metrics.
 */
import { alertRoutes, alertSignals } from '../http/routes/alerts.js';
import type { DashboardSignal } from '../http/routes/dashboard.js';
import type { AbuseDetector } from '../observability/abuse.js';
import { AlertMetrics } from '../observability/alert-metrics.js';
import { AlertEngine, type BudgetBoard, trafficSignals } from '../observability/alerts.js';
import type { DriftDetector } from '../observability/drift.js';
import type { LiveStats } from '../observability/live-stats.js';
import { type Capability, routes } from './capability.js';
import type { Core } from './core.js';

export interface AlertsCapability extends Capability {
  /** What the dashboard shows of them (undefined: no rules configured). */
  dashboard(): DashboardSignal[] | undefined;
}

export async function alertsCapability(
  core: Core,
  deps: { liveStats: LiveStats; budgetBoard: BudgetBoard; drift: DriftDetector; abuse: AbuseDetector },
): Promise<AlertsCapability> {
  const { config, log } = core;
  const lease =
    config.storage.kind === 'distributed' && config.alerts.rules.length > 0
      ? new (await import('../storage/redis/lease.js')).RedisLease(
          await (await import('../storage/redis/client.js')).connectRedis(config.storage.redisUrl, { commandTimeout: config.storage.redisCommandTimeoutMs }),
          `${config.storage.redisPrefix}alerts:leader`,
          core.nodeId,
          config.alerts.evaluateMs * 3,
        )
      : undefined;
  const metrics = new AlertMetrics(core.metrics.registry, { firing: () => engine.firing() });
  const engine: AlertEngine = new AlertEngine({
    rules: config.alerts.rules,
    signals: {
      ...trafficSignals(deps.liveStats),
      budgets: () => deps.budgetBoard.list(),
      drift: () => deps.drift.scores(),
      abuse: () => deps.abuse.activeFlags(),
      openBreakers: () => [...core.openBreakers],
    },
    webhook: core.alertWebhook,
    log,
    evaluateMs: config.alerts.evaluateMs,
    ...(lease ? { isLeader: () => lease.held() } : {}),
    onEvent: (e) => metrics.event(e),
  });
  return {
    name: 'alerts',
    dashboard: () => (config.alerts.rules.length ? alertSignals(engine) : undefined),
    adminRoutes: [routes(alertRoutes, { alerts: engine, rules: config.alerts.rules, delivering: config.alerts.webhook !== undefined })],
    start: () => engine.start(),
    async drain(graceMs) {
      // Deliveries in flight get the grace period (a webhook retries with backoff).
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([engine.stop(), new Promise((resolve) => (timer = setTimeout(resolve, graceMs)))]).finally(() => clearTimeout(timer));
      await lease?.close();
    },
  };
}
