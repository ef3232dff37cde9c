/**
 * Drift and abuse signals (admin key; errors as RFC 7807):
 *
 *   GET /admin/v1/drift[?route=]              this process's drift scores per route and feature
 *   GET /admin/v1/abuse[?kind=&tenant=]       this process's active abuse flags
 *
 * Also the rows the dashboard's drift and abuse tables show (driftSignals, abuseSignals).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Authenticator } from '../../auth/authenticator.js';
import { extractKey } from '../../auth/keys.js';
import type { AbuseConfig, DriftConfig } from '../../config/signals-schema.js';
import { GatewayError } from '../../errors.js';
import { ABUSE_KINDS, type AbuseDetector, type AbuseFlag, type AbuseKind } from '../../observability/abuse.js';
import type { DriftDetector, DriftScore } from '../../observability/drift.js';
import type { DashboardSignal } from './dashboard.js';

export interface SignalRoutesOptions {
  authenticator: Pick<Authenticator, 'authenticate'>;
  drift: Pick<DriftDetector, 'scores'>;
  driftConfig: DriftConfig;
  abuse: Pick<AbuseDetector, 'activeFlags'>;
  abuseConfig: AbuseConfig;
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
const round = (v: number | null) => (v === null ? null : Math.round(v * 10_000) / 10_000);

export function driftScoreJson(s: DriftScore) {
  return { route: s.route, feature: s.feature, score: round(s.score), recent_samples: s.recentSamples, baseline_samples: s.baselineSamples };
}

export function abuseFlagJson(f: AbuseFlag) {
  return {
    kind: f.kind,
    subject: f.subject,
    id: f.id,
    tenant: f.tenant,
    since: iso(f.since),
    last_seen: iso(f.lastSeen),
    detail: f.detail,
    throttled_until: iso(f.throttledUntil),
  };
}

/** Dashboard rows: one per route and feature, `ok` below 0.1, `warning` to 0.25, `drifting` above (PSI rules of thumb). */
export function driftSignals(drift: Pick<DriftDetector, 'scores'>): DashboardSignal[] {
  return drift.scores().map((s) => ({
    name: `${s.route} · ${s.feature}`,
    value: s.score === null ? null : Math.round(s.score * 1000) / 1000,
    state: s.score === null ? 'warming up' : s.score >= 0.25 ? 'drifting' : s.score >= 0.1 ? 'warning' : 'ok',
  }));
}

export function abuseSignals(abuse: Pick<AbuseDetector, 'activeFlags'>, now = Date.now()): DashboardSignal[] {
  return abuse.activeFlags().map((f) => ({
    name: `${f.kind} · ${f.subject} ${f.id} (${f.tenant})`,
    value: f.detail,
    state: f.throttledUntil !== null && f.throttledUntil > now ? 'throttled' : 'flagged',
  }));
}

function oneString(query: Record<string, unknown>, name: string): string | undefined {
  const v = query[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || v === '') throw new GatewayError('invalid_value', `Invalid value for '${name}': expected one non-empty string.`, { param: name });
  return v;
}

function rejectUnknown(query: Record<string, unknown>, known: string[]): void {
  for (const param of Object.keys(query)) {
    if (!known.includes(param)) throw new GatewayError('invalid_value', `Unknown parameter: '${param}'. Known: ${known.join(', ')}.`, { param });
  }
}

export async function signalRoutes(app: FastifyInstance, opts: SignalRoutesOptions): Promise<void> {
  const requireAdmin = async (request: FastifyRequest) => {
    const auth = await opts.authenticator.authenticate(extractKey(request.headers));
    if (auth.kind !== 'admin') throw new GatewayError('admin_required', 'This endpoint needs an admin key.');
  };

  app.get('/admin/v1/drift', { onRequest: requireAdmin }, async (request) => {
    const query = (request.query ?? {}) as Record<string, unknown>;
    rejectUnknown(query, ['route']);
    const route = oneString(query, 'route');
    const c = opts.driftConfig;
    const scores = c.enabled ? opts.drift.scores().filter((s) => route === undefined || s.route === route) : [];
    return {
      object: 'list',
      enabled: c.enabled,
      recent_minutes: c.recentMinutes,
      baseline_minutes: c.baselineMinutes,
      min_samples: c.minSamples,
      data: scores.map(driftScoreJson),
    };
  });

  app.get('/admin/v1/abuse', { onRequest: requireAdmin }, async (request) => {
    const query = (request.query ?? {}) as Record<string, unknown>;
    rejectUnknown(query, ['kind', 'tenant']);
    const kind = oneString(query, 'kind');
    if (kind !== undefined && !ABUSE_KINDS.includes(kind as AbuseKind)) {
      throw new GatewayError('invalid_value', `Invalid value for 'kind': must be one of ${ABUSE_KINDS.join(', ')}.`, { param: 'kind' });
    }
    const tenant = oneString(query, 'tenant');
    const c = opts.abuseConfig;
    const flags = c.enabled ? opts.abuse.activeFlags().filter((f) => (kind === undefined || f.kind === kind) && (tenant === undefined || f.tenant === tenant)) : [];
    return { object: 'list', enabled: c.enabled, action: c.action, data: flags.map(abuseFlagJson) };
  });
}
