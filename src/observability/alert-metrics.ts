/**
 * The alerts capability's metrics, registered on the gateway's registry: alert events by rule and
 * the alerts firing now (read from the alert engine when scraped).
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { AlertEvent } from './alerts.js';

export class AlertMetrics {
  private readonly events: Counter<'rule' | 'type'>;

  /** `firing` lists the alerts firing now (the alert engine's `firing()`). */
  constructor(registry: Registry, sources: { firing: () => ReadonlyArray<{ rule: string }> }) {
    const registers = [registry];
    const { firing } = sources;
    this.events = new Counter({
      name: 'tollgate_alert_events_total',
      help: 'Alert rule events (alert.firing, alert.resolved), by rule.',
      labelNames: ['rule', 'type'],
      registers,
    });
    new Gauge({
      name: 'tollgate_alerts_firing',
      help: 'Alerts firing now, by rule (in the process that evaluates the rules).',
      labelNames: ['rule'],
      registers,
      collect() {
        this.reset();
        const byRule = new Map<string, number>();
        for (const a of firing()) byRule.set(a.rule, (byRule.get(a.rule) ?? 0) + 1);
        for (const [rule, n] of byRule) this.set({ rule }, n);
      },
    });
  }

  /** Counts an alert event (the alert engine's onEvent). */
  event(e: AlertEvent): void {
    this.events.inc({ rule: e.alert.rule, type: e.type });
  }
}
