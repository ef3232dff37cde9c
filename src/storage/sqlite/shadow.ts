/**
 * `ShadowStore` on the embedded SQLite database (table `shadow_pairs`, migration 6). It
 * aggregates in SQL (index `shadow_pairs_by_route`: route, shadow model, ts) and takes each
 * median with one ordered lookup, so it never loads the pairs. better-sqlite3 is synchronous:
 * each method does its work at once and returns a settled promise.
 */
import type { Statement } from 'better-sqlite3';
import type { ShadowPair } from '../../routing/types.js';
import { type AggregateRow, PAIR_COLUMNS, type PairRow, type ShadowAggregate, type ShadowStore, aggregateFromRow, pairRow } from '../shadow-rows.js';
import type { Database } from './database.js';

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
        `INSERT INTO shadow_pairs (${PAIR_COLUMNS.join(', ')}) VALUES (${PAIR_COLUMNS.map((c) => `@${c}`).join(', ')})
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
    this.#sql.insert.run(pairRow(p));
  }

  async aggregate(route: string, from: number, to: number, agreementThreshold: number): Promise<ShadowAggregate[]> {
    const range = { route, from, to };
    return this.#sql.aggregate.all({ ...range, threshold: agreementThreshold }).map((row) => {
      const ok = Number(row.ok);
      const median = (stmt: MedianStatement) =>
        ok > 0 ? (stmt.get({ ...range, model: row.shadow_model, offset: medianOffset(ok) })?.v ?? null) : null;
      return aggregateFromRow(row, { primary: median(this.#sql.primaryMedian), shadow: median(this.#sql.shadowMedian) });
    });
  }
}

/** The 0-based offset of the nearest-rank median among `n` sorted values. */
function medianOffset(n: number): number {
  return Math.max(0, Math.ceil(n / 2) - 1);
}
