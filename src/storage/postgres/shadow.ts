/**
 * `ShadowStore` on PostgreSQL (table `shadow_pairs`, migration 5), with the semantics of
 * `SqliteShadowStore` (same contract suite). `put` is an `INSERT ... ON CONFLICT DO NOTHING`, so a
 * pair written twice counts once. An aggregate is one query per route and period; medians are
 * `percentile_disc(0.5)`, the nearest-rank median the SQLite adapter takes with an ordered lookup.
 * Times come from the caller (the gateway's clock), never the server's.
 */
import type { ShadowPair } from '../../routing/types.js';
import { type AggregateRow, PAIR_COLUMNS, type ShadowAggregate, type ShadowStore, aggregateFromRow, pairRow } from '../shadow-rows.js';
import { PostgresAdapter } from './database.js';

/** COUNTs are int8 (numbers, database.ts); SUMs of BIGINT are `numeric` (text). */
interface PostgresAggregateRow extends AggregateRow {
  primary_latency_p50: number | null;
  shadow_latency_p50: number | null;
}

export class PostgresShadowStore extends PostgresAdapter implements ShadowStore {
  async put(p: ShadowPair): Promise<void> {
    const sql = this.sql;
    await sql`INSERT INTO shadow_pairs ${sql(pairRow(p), PAIR_COLUMNS)} ON CONFLICT (request_id) DO NOTHING`;
  }

  async aggregate(route: string, from: number, to: number, agreementThreshold: number): Promise<ShadowAggregate[]> {
    const rows = await this.sql<PostgresAggregateRow[]>`
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
    return rows.map((row) => aggregateFromRow(row, { primary: row.primary_latency_p50, shadow: row.shadow_latency_p50 }));
  }
}
