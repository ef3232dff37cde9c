/**
 * Rate limits by tokens and by requests: one token bucket per scope (tenant, key, end user) and
 * kind, all taken at once or not at all (Counters.take is atomic, across processes in Redis).
 * A request takes its estimated tokens (prompt counted + max output); after it, the bucket is
 * corrected by the difference with the real usage. Answers carry OpenAI's x-ratelimit-* headers.
 */
import { GatewayError } from '../errors.js';
import type { BucketSpec, BucketState, BucketTake, Counters } from '../storage/types.js';
import type { Policy } from './policy.js';

export interface RateAdmission {
  /** The token buckets taken, for the correction after the request. */
  tokenTakes: BucketTake[];
  estimate: number;
  headers: Record<string, string>;
}

type Kind = 'requests' | 'tokens';

function spec(perMinute: number, burst: number): BucketSpec {
  return { capacity: Math.round(perMinute * burst), refillPerSec: perMinute / 60 };
}

/** OpenAI's reset format: "1s", "6m0s", "20ms". */
export function formatReset(ms: number): string {
  if (!Number.isFinite(ms)) return '0s';
  if (ms < 1000) return `${Math.max(0, Math.ceil(ms))}ms`;
  const total = Math.ceil(ms / 1000);
  const m = Math.floor(total / 60);
  const s = total % 60;
  return m > 0 ? `${m}m${s}s` : `${s}s`;
}

const LABEL: Record<Kind, string> = { requests: 'requests per minute (RPM)', tokens: 'tokens per minute (TPM)' };

export class RateLimiter {
  constructor(private readonly counters: Counters) {}

  /** Takes 1 request and `estimate` tokens from every bucket of the policy; throws 429 when one cannot. */
  async admit(policy: Policy, estimate: number, countTokens = true): Promise<RateAdmission> {
    const takes: BucketTake[] = [];
    const meta: Array<{ kind: Kind; perMinute: number; scope: string }> = [];
    for (const p of policy.limits) {
      const { requestsPerMinute: rpm, tokensPerMinute: tpm, burst } = p.limit;
      if (rpm !== undefined) {
        takes.push({ key: `rl:rpm:${p.scope}:${p.id}`, spec: spec(rpm, burst), amount: 1 });
        meta.push({ kind: 'requests', perMinute: rpm, scope: `${p.scope} ${p.id}` });
      }
      if (tpm !== undefined && countTokens) {
        takes.push({ key: `rl:tpm:${p.scope}:${p.id}`, spec: spec(tpm, burst), amount: Math.max(1, estimate) });
        meta.push({ kind: 'tokens', perMinute: tpm, scope: `${p.scope} ${p.id}` });
      }
    }
    if (takes.length === 0) return { tokenTakes: [], estimate, headers: {} };
    const result = await this.counters.take(takes);
    const headers = rateHeaders(result.buckets, meta);
    if (!result.ok) {
      const i = result.refusedIndex ?? 0;
      const m = meta[i]!;
      const t = takes[i]!;
      const wait = result.retryAfterMs ?? 1000;
      const never = !Number.isFinite(wait);
      headers['retry-after'] = String(never ? 60 : Math.max(1, Math.ceil(wait / 1000)));
      const asked = m.kind === 'tokens' ? `, this request needs ${t.amount} (prompt + max output tokens)` : '';
      const message = never
        ? `Request too large for the ${LABEL[m.kind]} limit of ${m.scope}: limit ${t.spec.capacity}${asked}. Lower max_tokens or the prompt.`
        : `Rate limit reached for ${m.scope} on ${LABEL[m.kind]}: limit ${m.perMinute}${asked}. Retry in ${formatReset(wait)}.`;
      throw new GatewayError('rate_limit_exceeded', message, { headers });
    }
    return { tokenTakes: takes.filter((_, i) => meta[i]!.kind === 'tokens'), estimate, headers };
  }

  /** Corrects the token buckets with the real usage (gives back the over-estimate, or takes the excess). */
  async reconcile(admission: RateAdmission, actualTokens: number): Promise<void> {
    const delta = admission.estimate - actualTokens;
    if (delta === 0) return;
    await Promise.all(admission.tokenTakes.map((t) => this.counters.adjust(t.key, t.spec, delta)));
  }
}

/** x-ratelimit-* from the most constrained bucket of each kind. */
function rateHeaders(buckets: BucketState[], meta: Array<{ kind: Kind; perMinute: number }>): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const kind of ['requests', 'tokens'] as const) {
    let best: { b: BucketState; perMinute: number } | undefined;
    buckets.forEach((b, i) => {
      const m = meta[i];
      if (m?.kind === kind && (!best || b.remaining < best.b.remaining)) best = { b, perMinute: m.perMinute };
    });
    if (!best) continue;
    headers[`x-ratelimit-limit-${kind}`] = String(best.perMinute);
    headers[`x-ratelimit-remaining-${kind}`] = String(Math.max(0, Math.floor(best.b.remaining)));
    headers[`x-ratelimit-reset-${kind}`] = formatReset(best.b.resetMs);
  }
  return headers;
}
