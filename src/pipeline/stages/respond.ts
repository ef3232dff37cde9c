/**
 * Respond, after the stages (src/pipeline/pipeline.ts): write the result. JSON answers go out whole with Tollgate's headers. Streams are
 * passed through chunk by chunk as SSE; usage is captured from upstream's last chunk (always
 * requested) and forwarded only when the client asked with stream_options.include_usage. A
 * stream that fails after its first byte ends with an in-band SSE error event and no [DONE], so
 * no client mistakes it for a complete answer. The cost of a stream, known only at its end, is
 * sent as the HTTP trailer x-tollgate-cost-usd. The usage event is written to the local spool
 * before the last byte of any answer (RespondOptions.record).
 */
import { GatewayError, toOpenAIErrorBody } from '../../errors.js';
import { costPico, formatUsd } from '../../metering/cost.js';
import { countText, estimatePromptTokens } from '../../metering/tokenizer.js';
import { type ChatCompletionChunk, RAW_JSON, UpstreamError, type Usage, toJsonText } from '../../providers/types.js';
import type { ChatResult, RequestContext } from '../context.js';

export function baseHeaders(ctx: RequestContext): Record<string, string> {
  const h: Record<string, string> = { 'x-request-id': ctx.id, ...ctx.extraHeaders };
  if (ctx.servedBy) {
    h['x-tollgate-model'] = ctx.servedBy.upstreamModel;
    h['x-tollgate-provider'] = ctx.servedBy.providerId;
  }
  const upstreamCalls = ctx.attempts.filter((a) => a.outcome !== 'circuit_open').length;
  h['x-tollgate-attempts'] = String(upstreamCalls);
  return h;
}

/**
 * Usage counted locally when upstream reported none (a server that ignores include_usage, a
 * stream the client left): the prompt is every billable part, as admission counted it (tools,
 * schemas and all, not only the messages), and the completion is what was sent.
 */
async function localUsage(ctx: RequestContext, completionText: string): Promise<Usage> {
  const prompt = ctx.admission?.promptTokens ?? (await estimatePromptTokens(ctx.operation, ctx.body, { imageTokens: ctx.servedBy?.price?.imageTokens }));
  const completion = countText(completionText);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

/** Records the usage (upstream's, or counted locally) and prices it; returns the USD string. */
function settleCost(ctx: RequestContext, usage: Usage, reported: boolean): string | undefined {
  ctx.usage = usage;
  ctx.usageReported = reported;
  // The deployment that answered prices it (a tiered route's chain mixes models); a cached answer: the route's.
  const price = ctx.servedBy ? ctx.servedBy.price : ctx.model?.price;
  const embedding = ctx.cache?.embedCostPico ?? 0;
  if (!price) {
    if (embedding > 0) ctx.costPico = embedding;
    return embedding > 0 ? formatUsd(embedding) : undefined;
  }
  const full = costPico(usage, price);
  if (ctx.cache?.served) {
    // Answered from the cache (or a shared call): what it would have cost is saved, not billed.
    ctx.savedPico = full;
    ctx.costPico = embedding;
  } else {
    // Escalation's discarded answers are billed with the one served.
    ctx.costPico = full + embedding + (ctx.discarded?.costPico ?? 0);
  }
  return formatUsd(ctx.costPico);
}

export function sendError(ctx: RequestContext, err: GatewayError, opts?: Pick<RespondOptions, 'record'>): void {
  ctx.error = err;
  ctx.status = err.status;
  if (ctx.sink.committed || ctx.clientAborted) return;
  opts?.record?.(ctx);
  ctx.sink.sendJson(err.status, { ...baseHeaders(ctx), ...err.headers }, toOpenAIErrorBody(err));
}

function streamFailure(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  if (err instanceof UpstreamError) {
    if (err.kind === 'timeout') return new GatewayError('upstream_timeout', `The upstream stream stalled: ${err.message}.`);
    return new GatewayError('upstream_error', `The upstream stream failed after it started: ${err.message}.`);
  }
  return new GatewayError('internal_error', 'The stream failed.');
}

async function respondStream(ctx: RequestContext, result: Extract<ChatResult, { kind: 'stream' }>, opts: RespondOptions): Promise<void> {
  const wantUsage = ctx.operation === 'chat' && ctx.body.stream_options?.include_usage === true;
  const writer = ctx.sink.openStream(baseHeaders(ctx), ['x-tollgate-cost-usd']);
  ctx.status = 200;
  let text = '';
  let deltas = 0;
  const allowance = ctx.admission?.budget && opts.streamOverBudget === 'cutoff' ? ctx.admission.maxOutputTokens : Infinity;
  let chunk: ChatCompletionChunk = result.first;
  try {
    for (;;) {
      for (const c of chunk.choices) {
        if (c.delta.content) {
          text += c.delta.content;
          deltas++;
        }
      }
      if (deltas > allowance) {
        // Past what its budget reservation covers (no max_tokens was given): cut it off.
        throw new GatewayError('budget_exceeded', `The stream was cut off: its output passed the ${allowance} tokens its budget reservation covers. Set max_tokens to bound it.`);
      }
      if (chunk.usage) {
        ctx.usage = chunk.usage;
        if (wantUsage) await writer.send(toJsonText(chunk));
        else if (chunk.choices.length > 0) {
          // Usage riding on a content chunk: strip it for a client that did not ask.
          delete chunk.usage;
          delete (chunk as { [RAW_JSON]?: string })[RAW_JSON];
          await writer.send(JSON.stringify(chunk));
        }
      } else {
        // Chunks pass through as upstream wrote them (with `usage: null` when upstream adds it).
        await writer.send(toJsonText(chunk));
      }
      result.idle.rearm();
      const next = await result.rest.next();
      if (next.done) break;
      chunk = next.value;
    }
    const cost = settleCost(ctx, ctx.usage ?? (await localUsage(ctx, text)), ctx.usage !== undefined);
    ctx.answerText = text;
    opts.record?.(ctx); // on disk before [DONE] and the end leave
    await writer.send('[DONE]');
    writer.end(cost === undefined ? undefined : { 'x-tollgate-cost-usd': cost });
  } catch (err) {
    // Billed for what was used: upstream's usage never came, so count what was streamed.
    settleCost(ctx, ctx.usage ?? (await localUsage(ctx, text)), ctx.usage !== undefined);
    if (ctx.sink.signal.aborted) {
      const reason: unknown = ctx.sink.signal.reason;
      if (reason instanceof GatewayError) {
        // Cut by the gateway (a shutdown's grace deadline): the sink sent the error event; not a
        // client that left. Recorded with the error's status (outcomeOf, src/pipeline/pipeline.ts).
        ctx.streamError = reason;
        opts.record?.(ctx);
        return;
      }
      ctx.clientAborted = true;
      opts.record?.(ctx);
      return;
    }
    const failure = streamFailure(err);
    ctx.streamError = failure;
    opts.record?.(ctx);
    await writer.send(JSON.stringify(toOpenAIErrorBody(failure))).catch(() => undefined);
    writer.end();
  } finally {
    result.idle.dispose();
    void result.rest.return?.(); // stops upstream when we stopped first (cutoff, error); no-op after the end
  }
}

export interface RespondOptions {
  /** What to do with a stream whose output passes its budget reservation. */
  streamOverBudget: 'cutoff' | 'finish';
  /**
   * Writes the request's usage event to the local spool (src/pipeline/stages/settle.ts,
   * recordUsage): called just before the answer's last byte is written (a JSON body, a stream's
   * [DONE] or error event), so a crash after the client has its answer cannot leave it unbilled.
   */
  record?: ((ctx: RequestContext) => void) | undefined;
}

export async function respond(ctx: RequestContext, opts: RespondOptions): Promise<void> {
  const result = ctx.result;
  if (!result) throw new GatewayError('internal_error', 'no result to respond with');
  if (result.kind === 'stream') return respondStream(ctx, result, opts);
  const headers = baseHeaders(ctx);
  let usage: Usage | undefined;
  let reported = true;
  if (result.kind === 'embeddings') {
    const u = result.body.usage;
    if (u) usage = { prompt_tokens: u.prompt_tokens, completion_tokens: 0, total_tokens: u.total_tokens };
  } else if (result.body.usage) {
    usage = result.body.usage;
  } else {
    const text = result.body.choices.map((c) => c.message.content ?? '').join('');
    reported = false;
    usage = await localUsage(ctx, text);
  }
  if (usage) {
    const cost = settleCost(ctx, usage, reported);
    if (cost !== undefined) headers['x-tollgate-cost-usd'] = cost;
  }
  ctx.status = 200;
  opts.record?.(ctx);
  ctx.sink.sendJson(200, headers, result.body);
}
