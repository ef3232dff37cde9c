/**
 * Alert rules (config `alerts.rules`): evaluated every `alerts.evaluateMs` against the gateway's
 * signals (live request statistics, budgets, drift scores, abuse flags, circuit breakers). Each
 * rule yields instances (one per tier, budget, route and feature, flag or deployment); an instance
 * whose condition holds for `forSeconds` fires once (`alert.firing`), stays quiet while it keeps
 * holding (de-duplication), and sends `alert.resolved` once its condition has been gone for
 * `forSeconds`. Deliveries are signed webhooks (src/observability/webhook.ts), in order per alert.
 *
 * In distributed mode only the process holding the alert lease evaluates (src/storage/redis/
 * lease.ts, `isLeader`), so an alert is sent once, not once per process; a new leader starts with
 * no state and may send a firing alert again (at least once).
 */
import type { AlertRule } from '../config/alerts-schema.js';
import type { LiveStats } from './live-stats.js';
import type { Logger } from './logger.js';
import type { WebhookSender } from './webhook.js';

export interface BudgetUse {
  /** The counter key: one per budget and period. */
  key: string;
  scope: string;
  id: string;
  period: string;
  limit: number;
  used: number;
}

/** What the rules look at; each source is optional (a rule on a missing source never fires). */
export interface AlertSignals {
  /** Tiers with traffic in the last `windowSec`. */
  tiers?(windowSec: number): string[];
  /** Latency quantile in milliseconds and the requests it is computed over. */
  latency?(q: number, tier: string | undefined, windowSec: number): { ms: number | undefined; requests: number };
  /** Share of requests answered 5xx (0-1) and the requests it is computed over. */
  errorRate?(tier: string | undefined, windowSec: number): { rate: number; requests: number };
  budgets?(): BudgetUse[];
  drift?(): Array<{ route: string; feature: string; score: number | null }>;
  abuse?(): Array<{ kind: string; subject: string; id: string; tenant?: string | undefined }>;
  openBreakers?(): string[];
}

/** A message sent to the webhook and kept in the history. */
export interface AlertEvent {
  type: 'alert.firing' | 'alert.resolved';
  alert: {
    /** Stable for the instance: `<rule>` plus its labels. */
    id: string;
    rule: string;
    kind: AlertRule['type'];
    severity: AlertRule['severity'];
    labels: Record<string, string>;
    value: number | null;
    threshold: number | null;
    started_at: string;
    resolved_at?: string;
  };
  at: string;
}

interface Observation {
  labels: Record<string, string>;
  value: number | null;
  /** undefined: not enough data for a verdict (the state is kept as it is). */
  holds: boolean | undefined;
}

interface InstanceState {
  rule: AlertRule;
  labels: Record<string, string>;
  value: number | null;
  /** When the condition started holding (pending until `forSeconds` later). */
  since: number;
  firedAt: number | undefined;
  /** When a firing alert's condition stopped holding. */
  clearSince: number | undefined;
  /** Deliveries of this alert, chained so a resolution never overtakes its firing. */
  delivery: Promise<unknown>;
}

export interface AlertEngineOptions {
  rules: AlertRule[];
  signals: AlertSignals;
  /** No webhook: alerts are evaluated and listed, not sent. */
  webhook?: Pick<WebhookSender, 'send'> | undefined;
  log: Logger;
  evaluateMs: number;
  /** Whether this process is the one that evaluates (distributed: the lease holder). */
  isLeader?: () => Promise<boolean>;
  now?: () => number;
  /** Every event, sent or not (metrics). */
  onEvent?: (event: AlertEvent) => void;
}

const HISTORY = 200;

function thresholdOf(rule: AlertRule): number | null {
  switch (rule.type) {
    case 'latency_p95':
      return rule.thresholdMs;
    case 'error_rate':
    case 'budget':
    case 'drift':
      return rule.threshold;
    default:
      return null;
  }
}

function idOf(rule: string, labels: Record<string, string>): string {
  const parts = Object.entries(labels)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([k, v]) => `${k}=${v}`);
  return parts.length ? `${rule}{${parts.join(',')}}` : rule;
}

export class AlertEngine {
  private readonly states = new Map<string, InstanceState>();
  private readonly history: AlertEvent[] = [];
  /** Deliveries not finished yet (an alert resolved and forgotten may still be sending). */
  private readonly inflight = new Set<Promise<unknown>>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private readonly now: () => number;

  constructor(private readonly opts: AlertEngineOptions) {
    this.now = opts.now ?? Date.now;
  }

  start(): void {
    if (this.timer || this.opts.rules.length === 0) return;
    this.timer = setInterval(() => void this.tick(), this.opts.evaluateMs);
    this.timer.unref();
  }

  /** Stops evaluating and waits for the deliveries in flight. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
    await Promise.all([...this.inflight]);
  }

  private async tick(): Promise<void> {
    if (this.running) return;
    this.running = (async () => {
      try {
        if (this.opts.isLeader && !(await this.opts.isLeader())) {
          this.states.clear(); // the leader owns the alerts now
          return;
        }
        this.evaluate();
      } catch (err) {
        this.opts.log.error({ err }, 'alert evaluation failed');
      }
    })();
    await this.running;
    this.running = undefined;
  }

  /** One evaluation of every rule (the timer calls it; tests call it with their clock). */
  evaluate(): AlertEvent[] {
    const now = this.now();
    const events: AlertEvent[] = [];
    for (const rule of this.opts.rules) {
      const observed = new Map<string, Observation>();
      for (const o of this.observe(rule)) observed.set(idOf(rule.name, o.labels), o);
      const holdMs = rule.forSeconds * 1000;
      for (const [id, o] of observed) {
        if (o.holds !== true) continue;
        let s = this.states.get(id);
        if (!s) {
          s = { rule, labels: o.labels, value: o.value, since: now, firedAt: undefined, clearSince: undefined, delivery: Promise.resolve() };
          this.states.set(id, s);
        }
        s.value = o.value;
        s.clearSince = undefined;
        if (s.firedAt === undefined && now - s.since >= holdMs) {
          s.firedAt = now;
          events.push(this.emit(id, s, 'alert.firing', now));
        }
      }
      for (const [id, s] of this.states) {
        if (s.rule !== rule) continue;
        const o = observed.get(id);
        if (o && o.holds !== false) continue; // still holds, or no verdict
        if (o) s.value = o.value;
        if (s.firedAt === undefined) {
          this.states.delete(id); // pending, never fired: nothing to resolve
          continue;
        }
        s.clearSince ??= now;
        if (now - s.clearSince >= holdMs) {
          events.push(this.emit(id, s, 'alert.resolved', now));
          this.states.delete(id);
        }
      }
    }
    return events;
  }

  /** Alerts firing now. */
  firing(): AlertEvent['alert'][] {
    return [...this.states.entries()].filter(([, s]) => s.firedAt !== undefined).map(([id, s]) => this.describe(id, s));
  }

  /** The latest events, newest first. */
  recent(limit = 50): AlertEvent[] {
    return this.history.slice(-limit).reverse();
  }

  private describe(id: string, s: InstanceState, resolvedAt?: number): AlertEvent['alert'] {
    return {
      id,
      rule: s.rule.name,
      kind: s.rule.type,
      severity: s.rule.severity,
      labels: s.labels,
      value: s.value,
      threshold: thresholdOf(s.rule),
      started_at: new Date(s.firedAt ?? s.since).toISOString(),
      ...(resolvedAt !== undefined ? { resolved_at: new Date(resolvedAt).toISOString() } : {}),
    };
  }

  private emit(id: string, s: InstanceState, type: AlertEvent['type'], now: number): AlertEvent {
    const event: AlertEvent = { type, alert: this.describe(id, s, type === 'alert.resolved' ? now : undefined), at: new Date(now).toISOString() };
    this.history.push(event);
    if (this.history.length > HISTORY) this.history.splice(0, this.history.length - HISTORY);
    this.opts.onEvent?.(event);
    this.opts.log.warn({ alert: event.alert.id, type, value: event.alert.value }, type === 'alert.firing' ? 'alert firing' : 'alert resolved');
    const webhook = this.opts.webhook;
    if (webhook) {
      const { type: _type, ...payload } = event;
      const delivery = s.delivery.then(() => webhook.send(type, payload)).catch(() => false);
      s.delivery = delivery;
      this.inflight.add(delivery);
      void delivery.then(() => this.inflight.delete(delivery));
    }
    return event;
  }

  private observe(rule: AlertRule): Observation[] {
    const sig = this.opts.signals;
    switch (rule.type) {
      case 'latency_p95':
      case 'error_rate': {
        const tiers = rule.tier !== undefined ? [rule.tier] : (sig.tiers?.(rule.windowSeconds) ?? []);
        return tiers.map((tier) => {
          if (rule.type === 'latency_p95') {
            const l = sig.latency?.(0.95, tier, rule.windowSeconds);
            const enough = l !== undefined && l.ms !== undefined && l.requests >= rule.minRequests;
            return { labels: { tier }, value: l?.ms ?? null, holds: enough ? l.ms! > rule.thresholdMs : undefined };
          }
          const e = sig.errorRate?.(tier, rule.windowSeconds);
          const enough = e !== undefined && e.requests >= rule.minRequests;
          return { labels: { tier }, value: e?.rate ?? null, holds: enough ? e.rate > rule.threshold : undefined };
        });
      }
      case 'budget':
        return (sig.budgets?.() ?? [])
          .filter((b) => b.limit > 0)
          .map((b) => ({ labels: { scope: b.scope, id: b.id, period: b.period }, value: b.used / b.limit, holds: b.used / b.limit >= rule.threshold }));
      case 'drift':
        return (sig.drift?.() ?? []).map((d) => ({
          labels: { route: d.route, feature: d.feature },
          value: d.score,
          holds: d.score === null ? undefined : d.score > rule.threshold,
        }));
      case 'abuse':
        return (sig.abuse?.() ?? [])
          .filter((f) => rule.kind === undefined || f.kind === rule.kind)
          .map((f) => ({ labels: { kind: f.kind, subject: f.subject, id: f.id, ...(f.tenant ? { tenant: f.tenant } : {}) }, value: 1, holds: true }));
      case 'breaker_open':
        return (sig.openBreakers?.() ?? []).map((deployment) => ({ labels: { deployment }, value: 1, holds: true }));
    }
  }
}

/**
 * The latest spend seen for each budget and period (from settle's reconciliations and refusals),
 * for the `budget` rule. Bounded; a budget whose period is over drops out (its alert resolves).
 */
export class BudgetBoard {
  private readonly latest = new Map<string, { use: BudgetUse; expiresAt: number }>();

  constructor(
    private readonly maxEntries = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  observe(settled: ReadonlyArray<BudgetUse & { ttlMs: number }>): void {
    const now = this.now();
    for (const b of settled) {
      if (!this.latest.has(b.key) && this.latest.size >= this.maxEntries) {
        const oldest = this.latest.keys().next().value;
        if (oldest !== undefined) this.latest.delete(oldest);
      }
      const { key, scope, id, period, limit, used } = b;
      this.latest.set(key, { use: { key, scope, id, period, limit, used }, expiresAt: now + b.ttlMs });
    }
  }

  list(): BudgetUse[] {
    const now = this.now();
    const out: BudgetUse[] = [];
    for (const [key, e] of this.latest) {
      if (e.expiresAt <= now) this.latest.delete(key);
      else out.push(e.use);
    }
    return out;
  }
}

/** The traffic rules' signals from the live statistics (the whole cluster's in distributed mode). */
export function trafficSignals(live: Pick<LiveStats, 'snapshot' | 'latencyQuantile'>): Pick<AlertSignals, 'tiers' | 'latency' | 'errorRate'> {
  const requestsOf = (tier: string | undefined, windowSec: number) => {
    const s = live.snapshot(windowSec);
    return tier === undefined ? s.requests : (s.tiers[tier]?.requests ?? 0);
  };
  return {
    tiers: (windowSec) => Object.keys(live.snapshot(windowSec).tiers),
    latency: (q, tier, windowSec) => ({
      ms: live.latencyQuantile(q, { ...(tier !== undefined ? { tier } : {}), windowSec }) ?? undefined,
      requests: requestsOf(tier, windowSec),
    }),
    errorRate: (tier, windowSec) => {
      const s = live.snapshot(windowSec);
      const t = tier === undefined ? s : s.tiers[tier];
      const requests = t?.requests ?? 0;
      return { rate: requests === 0 ? 0 : (t?.errors ?? 0) / requests, requests };
    },
  };
}
