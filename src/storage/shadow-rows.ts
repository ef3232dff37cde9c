/**
 * What the shadow pair adapters (src/storage/{sqlite,postgres}/shadow.ts) store and return: the
 * `ShadowStore` interface, a pair's row, the per-model aggregate of a route's pairs (`ShadowAggregate`) and the
 * mappings of both rows the adapters share. The report derived from an aggregate
 * (means, deltas, agreement rate) is routing's: src/routing/shadow-report.ts.
 */
import type { ShadowPair } from '../routing/types.js';

/**
 * Shadow pairs: sqlite | postgres (table `shadow_pairs`). Part of the contract: `put` is
 * idempotent by requestId (a second pair with the same id is ignored); `aggregate` covers pairs
 * with `from <= ts < to` of one route, one entry per shadow model, sorted by model name.
 */
export interface ShadowStore {
  put(pair: ShadowPair): Promise<void>;
  aggregate(route: string, from: number, to: number, agreementThreshold: number): Promise<ShadowAggregate[]>;
}

/** What adapters aggregate per shadow model (SQL); routing's `buildShadowReport` derives the rest. */
export interface ShadowAggregate {
  shadowModel: string;
  pairs: number;
  failures: number;
  /** Successful pairs. */
  ok: number;
  compared: number;
  agreeing: number;
  similaritySum: number;
  /** Sums over the successful pairs. */
  primaryLatencySum: number;
  shadowLatencySum: number;
  primaryCostSum: number;
  shadowCostSum: number;
  /** Nearest-rank medians over the successful pairs (null when there is none). */
  primaryLatencyP50: number | null;
  shadowLatencyP50: number | null;
}

/** A pair as a row of `shadow_pairs` (latencies rounded to whole ms). */
export interface PairRow {
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

export function pairRow(p: ShadowPair): PairRow {
  return {
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
  };
}

/** The columns of `shadow_pairs` a pair fills, in `PairRow` order. */
export const PAIR_COLUMNS = [
  'request_id', 'ts', 'tenant_id', 'route', 'primary_model', 'shadow_model', 'primary_latency_ms', 'shadow_latency_ms',
  'primary_prompt_tokens', 'primary_completion_tokens', 'shadow_prompt_tokens', 'shadow_completion_tokens',
  'primary_cost_pico', 'shadow_cost_pico', 'similarity', 'shadow_status', 'error',
] as const satisfies readonly (keyof PairRow)[];

/** A row of the adapters' aggregate query (drivers may return counts and sums as strings). */
export interface AggregateRow {
  shadow_model: string;
  pairs: number | string;
  failures: number | string;
  ok: number | string;
  compared: number | string;
  agreeing: number | string;
  similarity_sum: number | null;
  primary_latency_sum: number | string;
  shadow_latency_sum: number | string;
  primary_cost_sum: number | string;
  shadow_cost_sum: number | string;
}

export function aggregateFromRow(row: AggregateRow, medians: { primary: number | string | null; shadow: number | string | null }): ShadowAggregate {
  return {
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
    primaryLatencyP50: medians.primary === null ? null : Number(medians.primary),
    shadowLatencyP50: medians.shadow === null ? null : Number(medians.shadow),
  };
}
