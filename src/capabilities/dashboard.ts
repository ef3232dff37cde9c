/**
 * The live dashboard (/dashboard and /admin/v1/dashboard/*): live statistics, the ledger's
 * summary, the job queue, drift, abuse and alerts, streamed to the browser.
 */
import type { Authenticator } from '../auth/authenticator.js';
import { type DashboardSignals, dashboardRoutes } from '../http/routes/dashboard.js';
import { dashboardSummary } from '../observability/dashboard-summary.js';
import type { LiveStats } from '../observability/live-stats.js';
import { type Capability, routes } from './capability.js';
import type { Core } from './core.js';

export function dashboardCapability(
  core: Core,
  deps: {
    authenticator: Authenticator;
    liveStats: LiveStats;
    queueStats: () => Promise<Array<{ priority: number; queued: number; oldestAgeSeconds: number }>>;
    signals: () => DashboardSignals;
  },
): Capability {
  const { config, storage } = core;
  return {
    name: 'dashboard',
    routes: [
      routes(dashboardRoutes, {
        authenticator: deps.authenticator,
        live: deps.liveStats,
        summary: () => dashboardSummary({ ledger: storage.ledger, writer: core.ledger, records: storage.records, tiers: config.tiers }),
        queueStats: deps.queueStats,
        signals: deps.signals,
      }),
    ],
  };
}
