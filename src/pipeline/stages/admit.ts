/**
 * The admit stage: admission. Resolves the request's limits and budgets per tenant, key and end user
 * (its tier's, overridden by its tenant's and then its key's policy: src/metering/policy.ts),
 * estimates its tokens (prompt counted with the tokenizer + max output tokens) and its
 * worst-case cost, then takes the rate-limit buckets and reserves the budgets, all or none.
 * Fails with 429 rate_limit_exceeded (Retry-After) or 402 budget_exceeded. Settle corrects both
 * with the real usage.
 */
import type { TierConfig } from '../../config/schema.js';
import type { BudgetGuard } from '../../metering/budgets.js';
import { costPico } from '../../metering/cost.js';
import { resolvePolicy } from '../../metering/policy.js';
import type { RateLimiter } from '../../metering/rate-limiter.js';
import { estimatePromptTokens } from '../../metering/tokenizer.js';
import type { RequestContext } from '../context.js';

export interface AdmitOptions {
  tiers: Record<string, TierConfig>;
  rateLimiter: RateLimiter;
  budgets: BudgetGuard;
  defaultMaxOutputTokens: number;
}

/**
 * Prompt tokens of every billable part (messages and each content part, images at the model's
 * rate, tools and their schemas, response_format, any other parameter sent upstream; embeddings
 * input), counted locally with bounded work (src/metering/tokenizer.ts), and the most output
 * tokens the request can produce (per choice, times `n`).
 */
export async function estimateTokens(ctx: RequestContext, defaultMaxOutputTokens: number): Promise<{ prompt: number; maxOutput: number }> {
  const prompt = await estimatePromptTokens(ctx.operation, ctx.body, { imageTokens: ctx.model?.price?.imageTokens });
  if (ctx.operation === 'embeddings') return { prompt, maxOutput: 0 };
  const body = ctx.body;
  const perChoice = body.max_completion_tokens ?? body.max_tokens ?? defaultMaxOutputTokens;
  return { prompt, maxOutput: perChoice * (body.n ?? 1) };
}

export function admitStage(opts: AdmitOptions) {
  return async function admit(ctx: RequestContext): Promise<void> {
    if (!ctx.auth) return;
    const policy = resolvePolicy(opts.tiers, ctx.auth, ctx.endUser);
    if (policy.limits.length === 0 && policy.budgets.length === 0) return;
    const { prompt, maxOutput } = await estimateTokens(ctx, opts.defaultMaxOutputTokens);
    const rate = await opts.rateLimiter.admit(policy, prompt + maxOutput);
    Object.assign(ctx.extraHeaders, rate.headers);
    const price = ctx.model?.price;
    // A route that escalates JSON answers may make 1 + maxSteps upstream calls, all billed: reserve for each.
    const escalate = ctx.routing?.route.config.escalate;
    const calls = escalate && !(ctx.operation === 'chat' && ctx.body.stream) ? 1 + escalate.maxSteps : 1;
    const worstCase = price ? calls * costPico({ prompt_tokens: prompt, completion_tokens: maxOutput }, price) : 0;
    let budget;
    try {
      budget = await opts.budgets.reserve(policy, worstCase);
    } catch (err) {
      await opts.rateLimiter.reconcile(rate, 0); // nothing will be used: give the tokens back
      throw err;
    }
    ctx.admission = { rate, budget, maxOutputTokens: maxOutput, promptTokens: prompt };
  };
}
