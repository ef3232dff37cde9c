/**
 * Escalation: a tiered route may ask the next tier up when the answer of a lower tier fails a
 * check (`routes.<name>.escalate.on`):
 * - `empty`: no content and no tool calls;
 * - `length`: cut off by max_tokens (finish_reason length);
 * - `invalid_json`: the request asked for JSON (response_format json_object / json_schema) and the
 *   content does not parse.
 * JSON answers only: a stream's bytes are the client's as they arrive, so a stream is never
 * escalated. The discarded answer is still billed (its tokens and cost join the final answer's
 * in the ledger and x-tollgate-cost-usd). If the higher tier fails, the lower tier's answer is
 * served after all.
 *
 * The pipeline's escalate stage (`escalation`), between cache and invoke: it runs invoke
 * (`next`), then again on the next tier up while the answer fails a check.
 */
import { costPico } from '../metering/cost.js';
import type { Middleware } from '../pipeline/pipeline.js';
import type { ChatCompletion, ChatCompletionRequest } from '../providers/types.js';
import type { Router, Tier } from './router.js';

export type EscalationCheck = 'empty' | 'length' | 'invalid_json';

/** The first check the answer fails, or undefined. */
export function failedCheck(body: ChatCompletion, request: ChatCompletionRequest, checks: readonly EscalationCheck[]): EscalationCheck | undefined {
  const choice = body.choices[0];
  if (!choice) return checks.includes('empty') ? 'empty' : undefined;
  const content = choice.message.content ?? '';
  if (checks.includes('empty') && content.trim() === '' && (choice.message.tool_calls?.length ?? 0) === 0) return 'empty';
  if (checks.includes('length') && choice.finish_reason === 'length') return 'length';
  const format = request.response_format?.type;
  if (checks.includes('invalid_json') && (format === 'json_object' || format === 'json_schema') && (choice.message.tool_calls?.length ?? 0) === 0) {
    try {
      JSON.parse(content);
    } catch {
      return 'invalid_json';
    }
  }
  return undefined;
}

/** Time an escalation needs to be worth starting: less than this left before the deadline, the lower answer is served. */
const MIN_ESCALATION_MS = 250;

export function escalation(router: Router, deadlineMs = Number.POSITIVE_INFINITY): Middleware {
  return async (ctx, invoke) => {
    await invoke();
    if (ctx.operation !== 'chat') return;
    const decision = ctx.routing;
    const escalate = decision?.route.config.escalate;
    const request = ctx.body;
    if (!decision || !escalate || request.stream) return;
    for (let step = 0; step < escalate.maxSteps; step++) {
      const result = ctx.result;
      if (result?.kind !== 'chat') return;
      const failed = failedCheck(result.body, request, escalate.on);
      if (!failed) return;
      const next = router.nextTier(decision);
      if (next === undefined) return;
      // Too close to the request's deadline: an attempt cut to a few ms would only count a failure against a healthy tier.
      if (ctx.startedAt + deadlineMs - performance.now() < MIN_ESCALATION_MS) return;
      const kept = { result, servedBy: ctx.servedBy, chain: ctx.chain, tier: decision.tier };
      const usage = result.body.usage;
      const price = ctx.servedBy?.price;
      const d = (ctx.discarded ??= { promptTokens: 0, completionTokens: 0, costPico: 0 });
      const tier = decision.tiers[next] as Tier;
      ctx.log.info({ reqId: ctx.id, from: decision.tiers[decision.tier]?.name, to: tier.name, failed }, 'escalating to the next tier');
      ctx.result = undefined;
      decision.tier = next;
      ctx.chain = tier.deployments;
      ctx.extraHeaders['x-tollgate-tier'] = tier.name;
      ctx.extraHeaders['x-tollgate-escalated'] = failed;
      try {
        await invoke();
      } catch (err) {
        // The higher tier failed: serve what the lower one gave.
        ctx.log.warn({ reqId: ctx.id, err: (err as Error).message }, 'escalation failed; serving the lower tier answer');
        ctx.result = kept.result;
        ctx.servedBy = kept.servedBy;
        ctx.chain = kept.chain;
        decision.tier = kept.tier;
        ctx.extraHeaders['x-tollgate-tier'] = decision.tiers[kept.tier]?.name ?? '';
        delete ctx.extraHeaders['x-tollgate-escalated'];
        return;
      }
      // Billed: the answer thrown away.
      if (usage) {
        d.promptTokens += usage.prompt_tokens;
        d.completionTokens += usage.completion_tokens;
        if (price) d.costPico += costPico(usage, price);
      }
    }
  };
}
