/**
 * What one shadow call leaves behind (src/routing/shadow.ts): the similarity of the two answers,
 * the pair stored for the shadow report, and the ledger event (`<eventId>~shadow`, route `shadow`)
 * that puts the shadow spend in usage reports.
 */
import type { Embedder } from '../cache/types.js';
import type { Usage } from '../providers/types.js';
import type { UsageEvent } from '../storage/types.js';
import { dot } from '../util/vector.js';
import type { ShadowPair } from './types.js';

/** The user's request as a shadow pair and event need it (a subset of MirrorInput). */
export interface MirroredRequest {
  eventId: string;
  tenantId: string;
  keyId: string;
  userId: string;
  route: string;
  primary: { model: string; latencyMs: number; promptTokens: number; completionTokens: number; costPico: number };
}

/** The outcome of a shadow call, as recorded in its pair. */
export interface ShadowOutcome {
  latencyMs: number;
  usage: Usage | undefined;
  costPico: number;
  similarity: number | null;
  status: number;
  error: string;
}

/** The similarity (-1..1) of the primary's and the candidate's answers, and what embedding them cost. Throws what the embedder throws. */
export async function answerSimilarity(
  embedder: Embedder,
  primaryText: string,
  shadowText: string,
  timeoutMs: number,
): Promise<{ similarity: number | null; costPico: number }> {
  const res = await embedder.embed([primaryText, shadowText], { signal: AbortSignal.timeout(timeoutMs) });
  const [a, b] = res.vectors;
  // Both vectors come from one call to one embedder: same length; unit vectors, so the dot is the cosine.
  return { similarity: a && b ? Math.max(-1, Math.min(1, dot(a, b))) : null, costPico: res.cost?.costPico ?? 0 };
}

export function shadowPair(input: MirroredRequest, shadowModel: string, ts: number, r: ShadowOutcome): ShadowPair {
  return {
    requestId: input.eventId,
    ts,
    tenantId: input.tenantId,
    route: input.route,
    primaryModel: input.primary.model,
    shadowModel,
    primaryLatencyMs: Math.round(input.primary.latencyMs),
    shadowLatencyMs: r.latencyMs,
    primaryPromptTokens: input.primary.promptTokens,
    primaryCompletionTokens: input.primary.completionTokens,
    shadowPromptTokens: r.usage?.prompt_tokens ?? 0,
    shadowCompletionTokens: r.usage?.completion_tokens ?? 0,
    primaryCostPico: input.primary.costPico,
    shadowCostPico: r.costPico,
    similarity: r.similarity,
    shadowStatus: r.status,
    error: r.error,
  };
}

/** The ledger event of a shadow call; `served` is undefined when no deployment answered. */
export function shadowEvent(
  input: MirroredRequest,
  shadowModel: string,
  ts: number,
  r: { served: { deployment: string } | undefined; usage: Usage | undefined; usageReported: boolean; spentPico: number; latencyMs: number; status: number; attempts: number },
): UsageEvent {
  return {
    requestId: `${input.eventId}~shadow`,
    ts,
    tenantId: input.tenantId,
    keyId: input.keyId,
    userId: input.userId,
    route: 'shadow',
    requestedModel: shadowModel,
    servedModel: r.served ? shadowModel : '',
    deployment: r.served ? r.served.deployment : '',
    promptTokens: r.usage?.prompt_tokens ?? 0,
    completionTokens: r.usage?.completion_tokens ?? 0,
    cachedTokens: r.usage?.prompt_tokens_details?.cached_tokens ?? 0,
    costPico: r.spentPico,
    savedPico: 0,
    latencyMs: r.latencyMs,
    ttftMs: null,
    cache: 'none',
    status: r.status,
    attempts: r.attempts,
    usageReported: r.usageReported,
    tier: '',
    experiment: '',
    variant: '',
  };
}
