/**
 * `ShadowStore` on PostgreSQL (table `shadow_pairs`, migration 5), with the semantics of
 * `SqliteShadowStore` (same contract suite). `put` is an `INSERT ... ON CONFLICT DO NOTHING`, so a
 * pair written twice counts once. A report is one aggregate query per route and period; medians
 * are `percentile_disc(0.5)`, the nearest-rank median the SQLite adapter takes with an ordered
 * lookup. Times come from the caller (the gateway's clock), never the server's.
 */
import { type ShadowReport, type ShadowStore, buildShadowReport } from '../../routing/shadow-report.js';
import type { ShadowPair } from '../../routing/types.js';
import type { Sql } from './database.js';

/** COUNTs are int8 (numbers, database.ts); SUMs of BIGINT are `numeric` (text). */
interface AggregateRow {
  shadow_model: string;
  pairs: number;
  failures: number;
  ok: number;
  compared: number;
  agreeing: number;
  similarity_sum: number | null;
  primary_latency_sum: string;
  shadow_latency_sum: string;
  primary_cost_sum: string;
  shadow_cost_sum: string;
  primary_latency_p50: number | null;
  shadow_latency_p50: number | null;
}

export class PostgresShadowStore implements ShadowStore {
  readonly #sql: Sql;

  /** Uses a pool opened by `openPostgres` and migrated by `migratePostgres`; does not end it. */
  constructor(sql: Sql) {
    this.#sql = sql;
  }

  async put(p: ShadowPair): Promise<void> {
    await this.#sql`
      INSERT INTO shadow_pairs (request_id, ts, tenant_id, route, primary_model, shadow_model,
        primary_latency_ms, shadow_latency_ms, primary_prompt_tokens, primary_completion_tokens,
        shadow_prompt_tokens, shadow_completion_tokens, primary_cost_pico, shadow_cost_pico,
        similarity, shadow_status, error)
      VALUES (${p.requestId}, ${p.ts}, ${p.tenantId}, ${p.route}, ${p.primaryModel}, ${p.shadowModel},
        ${Math.round(p.primaryLatencyMs)}, ${Math.round(p.shadowLatencyMs)}, ${p.primaryPromptTokens}, ${p.primaryCompletionTokens},
        ${p.shadowPromptTokens}, ${p.shadowCompletionTokens}, ${p.primaryCostPico}, ${p.shadowCostPico},
        ${p.similarity}, ${p.shadowStatus}, ${p.error})
      ON CONFLICT (request_id) DO NOTHING`;
  }

  async report(route: string, from: number, to: number, agreementThreshold: number): Promise<ShadowReport[]> {
    const rows = await this.#sql<AggregateRow[]>`
      SELECT shadow_model,
             COUNT(*) AS pairs,
             COUNT(*) FILTER (WHERE shadow_status <> 200) AS failures,
             COUNT(*) FILTER (WHERE shadow_status = 200) AS ok,
             COUNT(*) FILTER (WHERE shadow_status = 200 AND similarity IS NOT NULL) AS compared,
             COUNT(*) FILTER (WHERE shadow_status = 200 AND similarity >= ${agreementThreshold}::double precision) AS agreeing,
             SUM(similarity) FILTER (WHERE shadow_status = 200) AS similarity_sum,
             COALESCE(SUM(primary_latency_ms) FILTER (WHERE shadow_status = 200), 0) AS primary_latency_sum,
             COALESCE(SUM(shadow_latency_ms) FILTER (WHERE shadow_status = 200), 0) AS shadow_latency_sum,
             COALESCE(SUM(primary_cost_pico) FILTER (WHERE shadow_status = 200), 0) AS primary_cost_sum,
             COALESCE(SUM(shadow_cost_pico) FILTER (WHERE shadow_status = 200), 0) AS shadow_cost_sum,
             percentile_disc(0.5) WITHIN GROUP (ORDER BY primary_latency_ms) FILTER (WHERE shadow_status = 200) AS primary_latency_p50,
             percentile_disc(0.5) WITHIN GROUP (ORDER BY shadow_latency_ms) FILTER (WHERE shadow_status = 200) AS shadow_latency_p50
      FROM shadow_pairs
      WHERE route = ${route} AND ts >= ${from} AND ts < ${to}
      GROUP BY shadow_model
      ORDER BY shadow_model`;
    return rows.map((row) =>
      buildShadowReport({
        shadowModel: row.shadow_model,
        pairs: Number(row.pairs),
        failures: Number(row.failures),
        ok: Number(row.ok),
        compared: Number(row.compared),
        agreeing: Number(row.agreeing),
        similaritySum: Number(row.similarity_sum ?? 0),
        primaryLatencySum: Number(row.primary_latency_sum),
        shadowLatencySum: Number(row.shadow_latency_sum),
        primaryCostSum: Number(row.primary_cost_sum),
        shadowCostSum: Number(row.shadow_cost_sum),
        primaryLatencyP50: row.primary_latency_p50 === null ? null : Number(row.primary_latency_p50),
        shadowLatencyP50: row.shadow_latency_p50 === null ? null : Number(row.shadow_latency_p50),
      }),
    );
  }
}
