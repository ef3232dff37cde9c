/**
 * Shadow traffic's reports: derived from what the `ShadowStore` adapters aggregate per shadow
 * model (src/storage/shadow-rows.ts). The service that records the pairs is shadow.ts.
 */
import type { ShadowAggregate, ShadowStore } from '../storage/shadow-rows.js';

export type { ShadowAggregate, ShadowStore } from '../storage/shadow-rows.js';

/**
 * One candidate's comparison with the primary answers of a route over a period. Latency and cost
 * are compared over the successful pairs only (a failed shadow has no comparable answer);
 * percentiles are nearest-rank (p50 of 4 values is the 2nd smallest).
 */
export interface ShadowReport {
  shadowModel: string;
  /** Pairs recorded (successful and failed). */
  pairs: number;
  /** Pairs whose shadow call failed (shadowStatus other than 200). */
  failures: number;
  /** Successful pairs with a similarity (an embedder was configured). */
  compared: number;
  /** Share of the compared pairs with similarity >= the threshold; null when none was compared. */
  agreementRate: number | null;
  meanSimilarity: number | null;
  /** Latency (ms) of the successful pairs; null when there is none. */
  primaryLatencyMeanMs: number | null;
  shadowLatencyMeanMs: number | null;
  primaryLatencyP50Ms: number | null;
  shadowLatencyP50Ms: number | null;
  /** shadow - primary. */
  latencyDeltaMeanMs: number | null;
  latencyDeltaP50Ms: number | null;
  /** Mean cost per successful pair, pico-dollars (may be fractional). */
  primaryCostPerRequestPico: number | null;
  shadowCostPerRequestPico: number | null;
  /** shadow - primary. */
  costDeltaPerRequestPico: number | null;
  /** (shadow - primary) / primary * 100; null when the primary cost nothing. */
  costDeltaPct: number | null;
}

/** The reports of a route's candidates over `from <= ts < to`, one per shadow model, sorted by model name. */
export async function shadowReports(
  store: Pick<ShadowStore, 'aggregate'>,
  route: string,
  from: number,
  to: number,
  agreementThreshold: number,
): Promise<ShadowReport[]> {
  return (await store.aggregate(route, from, to, agreementThreshold)).map(buildShadowReport);
}

export function buildShadowReport(a: ShadowAggregate): ShadowReport {
  const mean = (sum: number, n: number) => (n > 0 ? sum / n : null);
  const diff = (x: number | null, y: number | null) => (x === null || y === null ? null : x - y);
  const pLat = mean(a.primaryLatencySum, a.ok);
  const sLat = mean(a.shadowLatencySum, a.ok);
  const pCost = mean(a.primaryCostSum, a.ok);
  const sCost = mean(a.shadowCostSum, a.ok);
  return {
    shadowModel: a.shadowModel,
    pairs: a.pairs,
    failures: a.failures,
    compared: a.compared,
    agreementRate: mean(a.agreeing, a.compared),
    meanSimilarity: mean(a.similaritySum, a.compared),
    primaryLatencyMeanMs: pLat,
    shadowLatencyMeanMs: sLat,
    primaryLatencyP50Ms: a.ok > 0 ? a.primaryLatencyP50 : null,
    shadowLatencyP50Ms: a.ok > 0 ? a.shadowLatencyP50 : null,
    latencyDeltaMeanMs: diff(sLat, pLat),
    latencyDeltaP50Ms: a.ok > 0 ? diff(a.shadowLatencyP50, a.primaryLatencyP50) : null,
    primaryCostPerRequestPico: pCost,
    shadowCostPerRequestPico: sCost,
    costDeltaPerRequestPico: diff(sCost, pCost),
    costDeltaPct: pCost !== null && sCost !== null && pCost > 0 ? ((sCost - pCost) / pCost) * 100 : null,
  };
}

/** A report with no pairs (a configured candidate with nothing recorded yet). */
export function emptyShadowReport(shadowModel: string): ShadowReport {
  return buildShadowReport({
    shadowModel,
    pairs: 0,
    failures: 0,
    ok: 0,
    compared: 0,
    agreeing: 0,
    similaritySum: 0,
    primaryLatencySum: 0,
    shadowLatencySum: 0,
    primaryCostSum: 0,
    shadowCostSum: 0,
    primaryLatencyP50: null,
    shadowLatencyP50: null,
  });
}
