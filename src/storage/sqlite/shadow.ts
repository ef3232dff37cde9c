/**
 * `ShadowStore` on the embedded SQLite database (table `shadow_pairs`, migration 6). A report
 * aggregates in SQL (index `shadow_pairs_by_route`: route, shadow model, ts) and takes each
 * median with one ordered lookup, so it never loads the pairs. better-sqlite3 is synchronous:
 * each method does its work at once and returns a settled promise.
 */
import type { Statement } from 'better-sqlite3';
import { type ShadowAggregate, type ShadowReport, type ShadowStore, buildShadowReport, medianOffset } from '../../routing/shadow-report.js';
import type { ShadowPair } from '../../routing/types.js';
import type { Database } from './database.js';

interface PairRow {
  request_id: string;
  ts: number;
  tenant_id: string;
  route: string;
  primary_model: string;
  shadow_model: string;
  primary_latency_ms: number;
  shadow_latency_ms: number;
  primary_prompt_tokens: number;
  primary_completion_tokens: number;
  shadow_prompt_tokens: number;
  shadow_completion_tokens: number;
  primary_cost_pico: number;
  shadow_cost_pico: number;
  similarity: number | null;
  shadow_status: number;
  error: string;
}

interface AggregateRow {
  shadow_model: string;
  pairs: number;
  failures: number;
  ok: number;
  compared: number;
  agreeing: number;
  similarity_sum: number;
  primary_latency_sum: number;
  shadow_latency_sum: number;
  primary_cost_sum: number;
  shadow_cost_sum: number;
}

interface RangeParams {
  route: string;
  from: number;
  to: number;
}

type MedianStatement = Statement<[RangeParams & { model: string; offset: number }], { v: number }>;

export class SqliteShadowStore implements ShadowStore {
  readonly #sql: {
    insert: Statement<[PairRow]>;
    aggregate: Statement<[RangeParams & { threshold: number }], AggregateRow>;
    primaryMedian: MedianStatement;
    shadowMedian: MedianStatement;
  };

  /** Uses a database opened (and migrated) by `openDatabase`; does not close it. */
  constructor(db: Database) {
    const okInRange = `route = @route AND shadow_model = @model AND ts >= @from AND ts < @to AND shadow_status = 200`;
    this.#sql = {
      insert: db.prepare(
        `INSERT INTO shadow_pairs (request_id, ts, tenant_id, route, primary_model, shadow_model,
            primary_latency_ms, shadow_latency_ms, primary_prompt_tokens, primary_completion_tokens,
            shadow_prompt_tokens, shadow_completion_tokens, primary_cost_pico, shadow_cost_pico,
            similarity, shadow_status, error)
         VALUES (@request_id, @ts, @tenant_id, @route, @primary_model, @shadow_model,
            @primary_latency_ms, @shadow_latency_ms, @primary_prompt_tokens, @primary_completion_tokens,
            @shadow_prompt_tokens, @shadow_completion_tokens, @primary_cost_pico, @shadow_cost_pico,
            @similarity, @shadow_status, @error)
         ON CONFLICT (request_id) DO NOTHING`,
      ),
      aggregate: db.prepare(
        `SELECT shadow_model,
                COUNT(*) AS pairs,
                SUM(shadow_status <> 200) AS failures,
                SUM(shadow_status = 200) AS ok,
                SUM(shadow_status = 200 AND similarity IS NOT NULL) AS compared,
                SUM(shadow_status = 200 AND similarity IS NOT NULL AND similarity >= @threshold) AS agreeing,
                TOTAL(CASE WHEN shadow_status = 200 THEN similarity END) AS similarity_sum,
                COALESCE(SUM(CASE WHEN shadow_status = 200 THEN primary_latency_ms END), 0) AS primary_latency_sum,
                COALESCE(SUM(CASE WHEN shadow_status = 200 THEN shadow_latency_ms END), 0) AS shadow_latency_sum,
                COALESCE(SUM(CASE WHEN shadow_status = 200 THEN primary_cost_pico END), 0) AS primary_cost_sum,
                COALESCE(SUM(CASE WHEN shadow_status = 200 THEN shadow_cost_pico END), 0) AS shadow_cost_sum
         FROM shadow_pairs
         WHERE route = @route AND ts >= @from AND ts < @to
         GROUP BY shadow_model
         ORDER BY shadow_model`,
      ),
      primaryMedian: db.prepare(`SELECT primary_latency_ms AS v FROM shadow_pairs WHERE ${okInRange} ORDER BY v LIMIT 1 OFFSET @offset`),
      shadowMedian: db.prepare(`SELECT shadow_latency_ms AS v FROM shadow_pairs WHERE ${okInRange} ORDER BY v LIMIT 1 OFFSET @offset`),
    };
  }

  async put(p: ShadowPair): Promise<void> {
    this.#sql.insert.run({
      request_id: p.requestId,
      ts: p.ts,
      tenant_id: p.tenantId,
      route: p.route,
      primary_model: p.primaryModel,
      shadow_model: p.shadowModel,
      primary_latency_ms: Math.round(p.primaryLatencyMs),
      shadow_latency_ms: Math.round(p.shadowLatencyMs),
      primary_prompt_tokens: p.primaryPromptTokens,
      primary_completion_tokens: p.primaryCompletionTokens,
      shadow_prompt_tokens: p.shadowPromptTokens,
      shadow_completion_tokens: p.shadowCompletionTokens,
      primary_cost_pico: p.primaryCostPico,
      shadow_cost_pico: p.shadowCostPico,
      similarity: p.similarity,
      shadow_status: p.shadowStatus,
      error: p.error,
    });
  }

  async report(route: string, from: number, to: number, agreementThreshold: number): Promise<ShadowReport[]> {
    const range = { route, from, to };
    return this.#sql.aggregate.all({ ...range, threshold: agreementThreshold }).map((row) => {
      const ok = Number(row.ok);
      const median = (stmt: MedianStatement) =>
        ok > 0 ? (stmt.get({ ...range, model: row.shadow_model, offset: medianOffset(ok) })?.v ?? null) : null;
      const agg: ShadowAggregate = {
        shadowModel: row.shadow_model,
        pairs: Number(row.pairs),
        failures: Number(row.failures),
        ok,
        compared: Number(row.compared),
        agreeing: Number(row.agreeing),
        similaritySum: Number(row.similarity_sum),
        primaryLatencySum: Number(row.primary_latency_sum),
        shadowLatencySum: Number(row.shadow_latency_sum),
        primaryCostSum: Number(row.primary_cost_sum),
        shadowCostSum: Number(row.shadow_cost_sum),
        primaryLatencyP50: median(this.#sql.primaryMedian),
        shadowLatencyP50: median(this.#sql.shadowMedian),
      };
      return buildShadowReport(agg);
    });
  }
}
