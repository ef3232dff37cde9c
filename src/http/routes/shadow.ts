/**
 * Shadow traffic's admin surface (registered under `/admin/v1` by admin.ts):
 * - `GET /shadow`: the configured candidates per route, and this process's shadow counters.
 * - `GET /shadow/:route?from=&to=`: the comparison of the route's answers with its candidates'
 *   (src/routing/shadow.ts), one entry per candidate model. `from`/`to`: ISO 8601 or epoch ms,
 *   default the last 30 days (as `GET /usage`).
 */
import type { FastifyInstance } from 'fastify';
import { GatewayError } from '../../errors.js';
import { formatUsd } from '../../metering/cost.js';
import { parseUsageQuery } from '../../metering/usage-report.js';
import type { ShadowConfig, ShadowService } from '../../routing/shadow.js';
import { type ShadowReport, type ShadowStore, emptyShadowReport, shadowReports } from '../../routing/shadow-report.js';

export interface ShadowRoutesOptions {
  shadow: Pick<ShadowService, 'stats'>;
  store: Pick<ShadowStore, 'aggregate'>;
  routes: Record<string, ShadowConfig>;
}

export function shadowConfigJson(route: string, c: ShadowConfig) {
  return {
    route,
    model: c.model,
    sample_rate: c.sampleRate,
    daily_budget_usd: c.dailyBudgetUsd,
    agreement_threshold: c.agreementThreshold,
  };
}

const round = (v: number | null, digits: number) => (v === null ? null : Math.round(v * 10 ** digits) / 10 ** digits);
const usd = (pico: number | null) => (pico === null ? null : formatUsd(Math.round(pico)));

/** One candidate's report, snake_case; costs as exact decimal USD strings per request. */
export function shadowReportJson(r: ShadowReport) {
  return {
    shadow_model: r.shadowModel,
    pairs: r.pairs,
    failures: r.failures,
    compared: r.compared,
    agreement_rate: round(r.agreementRate, 4),
    mean_similarity: round(r.meanSimilarity, 4),
    primary_latency_mean_ms: round(r.primaryLatencyMeanMs, 1),
    shadow_latency_mean_ms: round(r.shadowLatencyMeanMs, 1),
    latency_delta_mean_ms: round(r.latencyDeltaMeanMs, 1),
    primary_latency_p50_ms: r.primaryLatencyP50Ms,
    shadow_latency_p50_ms: r.shadowLatencyP50Ms,
    latency_delta_p50_ms: r.latencyDeltaP50Ms,
    primary_cost_per_request_usd: usd(r.primaryCostPerRequestPico),
    shadow_cost_per_request_usd: usd(r.shadowCostPerRequestPico),
    cost_delta_per_request_usd: usd(r.costDeltaPerRequestPico),
    cost_delta_pct: round(r.costDeltaPct, 2),
  };
}

/**
 * The report of a route, with the configured candidate listed (0 pairs) even before it has any,
 * then every other model that was a candidate in the period. Throws `not_found` for a route
 * without shadow traffic configured. Shared by the admin API and `tollgate shadow report`.
 */
export async function shadowRouteReport(
  store: Pick<ShadowStore, 'aggregate'>,
  routes: Record<string, ShadowConfig>,
  route: string,
  params: { from?: string | undefined; to?: string | undefined },
  now: number = Date.now(),
) {
  const cfg = Object.hasOwn(routes, route) ? routes[route] : undefined;
  if (!cfg) {
    const known = Object.keys(routes);
    throw new GatewayError(
      'not_found',
      `route '${route}' has no shadow traffic configured (${known.length ? `routes with shadow: ${known.join(', ')}` : 'no route has routes.<name>.shadow'})`,
    );
  }
  const { from, to } = parseUsageQuery({ from: params.from, to: params.to }, now);
  const reports = await shadowReports(store, route, from, to, cfg.agreementThreshold);
  const configured = reports.find((r) => r.shadowModel === cfg.model) ?? emptyShadowReport(cfg.model);
  const others = reports.filter((r) => r.shadowModel !== cfg.model);
  return {
    object: 'shadow_report',
    route,
    from: new Date(from).toISOString(),
    to: new Date(to).toISOString(),
    config: shadowConfigJson(route, cfg),
    data: [configured, ...others].map(shadowReportJson),
  };
}

export async function shadowRoutes(app: FastifyInstance, opts: ShadowRoutesOptions): Promise<void> {
  app.get('/shadow', async () => {
    const s = opts.shadow.stats();
    return {
      object: 'shadow',
      data: Object.entries(opts.routes).map(([route, c]) => shadowConfigJson(route, c)),
      stats: { mirrored: s.mirrored, skipped_budget: s.skippedBudget, skipped_busy: s.skippedBusy, failed: s.failed, in_flight: s.inFlight },
    };
  });

  app.get<{ Params: { route: string }; Querystring: { from?: string; to?: string } }>('/shadow/:route', async (request) =>
    shadowRouteReport(opts.store, opts.routes, request.params.route, request.query),
  );
}
