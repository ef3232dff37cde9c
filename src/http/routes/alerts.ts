/** `GET /admin/v1/alerts`: the configured rules, the alerts firing now and the latest events. */
import type { FastifyInstance } from 'fastify';
import type { AlertRule } from '../../config/alerts-schema.js';
import type { AlertEngine } from '../../observability/alerts.js';
import type { DashboardSignal } from './dashboard.js';

export interface AlertRoutesOptions {
  alerts: Pick<AlertEngine, 'firing' | 'recent'>;
  rules: AlertRule[];
  /** Whether alerts are sent anywhere (a webhook is configured). */
  delivering: boolean;
}

export async function alertRoutes(app: FastifyInstance, opts: AlertRoutesOptions): Promise<void> {
  app.get('/alerts', async () => ({
    object: 'alerts',
    delivering: opts.delivering,
    rules: opts.rules,
    firing: opts.alerts.firing(),
    recent: opts.alerts.recent(50),
  }));
}

/** The dashboard's alerts table: what fires now, then what resolved lately. */
export function alertSignals(alerts: Pick<AlertEngine, 'firing' | 'recent'>): DashboardSignal[] {
  const firing = alerts.firing().map((a) => ({ name: a.id, value: a.value === null ? null : Math.round(a.value * 1000) / 1000, state: 'firing' }));
  const firingIds = new Set(firing.map((f) => f.name));
  const resolved = alerts
    .recent(20)
    .filter((e) => e.type === 'alert.resolved' && !firingIds.has(e.alert.id))
    .map((e) => ({ name: e.alert.id, value: e.alert.resolved_at ?? null, state: 'resolved' }));
  return [...firing, ...resolved];
}
