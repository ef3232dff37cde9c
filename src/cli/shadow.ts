/**
 * `tollgate shadow report <route> [--from DATE] [--to DATE] [--json]`: how a route's shadow
 * candidate compares with the answers users got (agreement, latency, cost), read from the store
 * the config points at: the report of GET /admin/v1/shadow/:route, as a table (or JSON).
 */
import type { Config } from '../config/schema.js';
import { shadowRouteReport } from '../http/routes/shadow.js';
import { shadowRoutesOf } from '../routing/shadow.js';
import { openStorage } from '../storage/index.js';
import { printTable } from './table.js';

export interface ShadowFlags {
  json?: boolean;
  from?: string;
  to?: string;
}

const USAGE = 'usage: tollgate shadow report <route> [--from DATE] [--to DATE] [--json]';

const show = (v: string | number | null, suffix = '') => (v === null ? '-' : `${v}${suffix}`);

export async function shadowCommand(config: Config, action: string | undefined, args: string[], flags: ShadowFlags): Promise<void> {
  if (action !== 'report' || !args[0]) throw new Error(USAGE);
  const route = args[0];
  const routes = shadowRoutesOf(config.routes);
  const storage = await openStorage(config);
  try {
    const report = await shadowRouteReport(storage.shadow, routes, route, { from: flags.from, to: flags.to }).catch((err: unknown) => {
      // GatewayErrors (unknown route, bad dates) become plain CLI errors.
      throw err instanceof Error ? new Error(err.message) : err;
    });
    if (flags.json) return void process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    const c = report.config;
    process.stdout.write(
      `Shadow traffic of route '${route}' from ${report.from} to ${report.to}\n` +
        `candidate ${c.model}, sample rate ${c.sample_rate}, daily budget $${c.daily_budget_usd} per tenant, agreement at similarity >= ${c.agreement_threshold}\n\n`,
    );
    printTable(
      ['shadow model', 'pairs', 'failures', 'agreement', 'similarity', 'latency p50 (primary/shadow/delta ms)', 'latency mean delta ms', 'cost/request primary', 'cost/request shadow', 'cost delta'],
      report.data.map((r) => [
        r.shadow_model,
        String(r.pairs),
        String(r.failures),
        r.agreement_rate === null ? '-' : `${Math.round(r.agreement_rate * 1000) / 10}%`,
        show(r.mean_similarity),
        `${show(r.primary_latency_p50_ms)} / ${show(r.shadow_latency_p50_ms)} / ${show(r.latency_delta_p50_ms)}`,
        show(r.latency_delta_mean_ms),
        r.primary_cost_per_request_usd === null ? '-' : `$${r.primary_cost_per_request_usd}`,
        r.shadow_cost_per_request_usd === null ? '-' : `$${r.shadow_cost_per_request_usd}`,
        r.cost_delta_pct === null ? show(r.cost_delta_per_request_usd) : `${r.cost_delta_pct > 0 ? '+' : ''}${r.cost_delta_pct}%`,
      ]),
    );
  } finally {
    await storage.close();
  }
}
