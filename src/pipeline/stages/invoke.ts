/**
 * The invoke stage, the innermost: call the chain of deployments until one answers.
 *
 * Per deployment: the circuit breaker admits or skips it; each attempt has its own timeout (to
 * the full JSON answer, or to the first chunk of a stream) within the request's overall deadline;
 * retryable failures are retried with full-jitter backoff, honouring Retry-After; when retries
 * are spent (or Retry-After is too long) the next deployment is tried. Non-retryable failures
 * (e.g. upstream 400) end the request at once. A stream counts as answered at its first chunk:
 * from then on the client has bytes and no fallback is possible; the attempt's timer becomes the
 * idle timer between chunks, and the overall deadline no longer applies.
 *
 * A failure that is not the upstream's (the gateway could not serialize or translate the
 * caller's body, or its own code threw) is never retried and never counted by a breaker, so no
 * request can open a circuit for every tenant: the caller's input -> 400 at once; anything else
 * -> the next deployment, then 502.
 *
 * Errors: 502 upstream_error, 503 circuit_open / upstream_unavailable, 504 upstream_timeout,
 * 429 upstream_rate_limited, 400 invalid_request (a body the gateway cannot send), or the
 * upstream 400/413/422 passed through.
 */
import type { EmbedBatcher } from '../../providers/embed-batcher.js';
import type { ResilienceConfig } from '../../config/schema.js';
import { GatewayError } from '../../errors.js';
import { costPico } from '../../metering/cost.js';
import { estimatePromptTokens } from '../../metering/tokenizer.js';
import type { GatewayMetrics } from '../../observability/metrics.js';
import { type ChatCompletionChunk, LocalRequestError, UpstreamError } from '../../providers/types.js';
import type { BreakerRegistry } from '../../resilience/circuit-breaker.js';
import { decideRetry, sleep } from '../../resilience/retry.js';
import type { Deployment } from '../../routing/catalog.js';
import type { PipelineResult, RequestContext } from '../context.js';

export interface InvokeOptions {
  resilience: ResilienceConfig;
  breakers: BreakerRegistry;
  metrics: GatewayMetrics;
  random?: () => number;
  /** How a retry waits `ms` (rejecting when `signal` aborts); default: a real timer. Tests record the waits. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  /** Embeddings micro-batching (single-input requests share upstream calls). */
  embedBatcher?: EmbedBatcher;
}

/**
 * An attempt's abort controller: follows the client, and times out at the attempt timeout or the
 * request's deadline, whichever comes first. Once a stream has started, `arm` turns its timer into
 * the idle timer between chunks (the deadline no longer applies).
 */
class AttemptScope {
  readonly controller = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private readonly onClient: () => void;

  constructor(
    private readonly client: AbortSignal,
    timeoutMs: number,
    deadlineAt: number,
  ) {
    this.onClient = () => this.controller.abort(client.reason ?? new UpstreamError('aborted', 'client closed the connection'));
    client.addEventListener('abort', this.onClient, { once: true });
    const untilDeadline = deadlineAt - performance.now();
    if (untilDeadline < timeoutMs) this.arm(Math.max(1, untilDeadline), 'request deadline exceeded');
    else this.arm(timeoutMs, `attempt timed out after ${timeoutMs}ms`);
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  arm(ms: number, message: string): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.controller.abort(new UpstreamError('timeout', message)), ms);
    this.timer.unref();
  }

  dispose(): void {
    clearTimeout(this.timer);
    this.client.removeEventListener('abort', this.onClient);
  }
}

/** An attempt with less of the deadline left than this is not started: it could only time out. */
const MIN_ATTEMPT_MS = 10;

function outcomeLabel(err: UpstreamError): string {
  return err.kind === 'http' ? `http_${err.status ?? 'unknown'}` : err.kind;
}

/** Whether a failure that is not an UpstreamError comes from the caller's input (serializing or translating it). */
function isCallersInput(err: unknown): boolean {
  return err instanceof LocalRequestError || err instanceof RangeError;
}

/** The error the client sees when upstream refused the request itself (not retryable). */
function rejectedError(err: UpstreamError, dep: Deployment): GatewayError {
  const detail = err.upstreamMessage ? `: ${err.upstreamMessage}` : '';
  if (err.status === 400 || err.status === 422) {
    return new GatewayError(err.status === 400 ? 'invalid_request' : 'unprocessable', `The upstream model rejected the request${detail}`, {
      status: err.status,
    });
  }
  if (err.status === 413) return new GatewayError('body_too_large', `The upstream model rejected the request as too large${detail}`);
  if (err.kind === 'aborted') return new GatewayError('upstream_error', 'The request was aborted.', { status: 499 });
  // 401/403/404 from a provider is the gateway's configuration, not the caller's fault: no detail.
  return new GatewayError('upstream_error', `Deployment ${dep.id} refused the request (HTTP ${err.status ?? '?'}).`);
}

/** The error the client sees when every deployment failed. */
function exhaustedError(model: string, last: UpstreamError | undefined, retryInMs: number | undefined): GatewayError {
  if (!last) {
    const secs = Math.max(1, Math.ceil((retryInMs ?? 1000) / 1000));
    return new GatewayError('circuit_open', `Every deployment of model '${model}' is unavailable (circuit open). Retry in ${secs}s.`, {
      headers: { 'retry-after': String(secs) },
    });
  }
  if (last.kind === 'timeout') return new GatewayError('upstream_timeout', `The model '${model}' did not answer in time: ${last.message}.`);
  if (last.status === 429) {
    const headers: Record<string, string> = {};
    if (last.retryAfterMs !== undefined) headers['retry-after'] = String(Math.max(1, Math.ceil(last.retryAfterMs / 1000)));
    return new GatewayError('upstream_rate_limited', `Every deployment of model '${model}' is rate limited upstream.`, { headers });
  }
  if (last.status === 503) return new GatewayError('upstream_unavailable', `Every deployment of model '${model}' is unavailable.`);
  const what = last.kind === 'http' ? `HTTP ${last.status}` : last.kind;
  return new GatewayError('upstream_error', `Every deployment of model '${model}' failed (last: ${what}).`);
}

export function invokeStage(opts: InvokeOptions) {
  const { resilience, breakers, metrics } = opts;

  async function attemptOnce(ctx: RequestContext, dep: Deployment, scope: AttemptScope): Promise<PipelineResult> {
    const call = { signal: scope.signal, upstreamModel: dep.upstreamModel, requestId: ctx.id };
    if (ctx.operation === 'embeddings') {
      const body = ctx.body;
      return { kind: 'embeddings', body: await (opts.embedBatcher ? opts.embedBatcher.embed(dep, body, call) : dep.provider.embed(body, call)) };
    }
    const body = ctx.body;
    if (!body.stream) return { kind: 'chat', body: await dep.provider.chat(body, call) };
    const stream = await dep.provider.chatStream(body, call);
    const rest = stream[Symbol.asyncIterator]() as AsyncIterator<ChatCompletionChunk>;
    const first = await rest.next();
    if (first.done) throw new UpstreamError('protocol', 'stream ended before the first chunk', { phase: 'stream' });
    ctx.ttftMs = performance.now() - ctx.startedAt;
    return {
      kind: 'stream',
      first: first.value,
      rest,
      idle: {
        rearm: (ms = resilience.streamIdleTimeoutMs) => scope.arm(ms, `stream idle for more than ${ms}ms`),
        dispose: () => scope.dispose(),
      },
    };
  }

  return async function invoke(ctx: RequestContext): Promise<void> {
    const chain = ctx.chain ?? [];
    const client = ctx.upstreamSignal ?? ctx.sink.signal;
    // The deadline covers every attempt and wait up to the first byte.
    const deadlineAt = ctx.startedAt + resilience.deadlineMs;
    const remaining = () => deadlineAt - performance.now();
    let last: UpstreamError | undefined;
    let retryInMs: number | undefined;
    for (const dep of chain) {
      const breaker = breakers.get(dep.id);
      for (let retries = 0; ; retries++) {
        if (!breaker.tryAcquire()) {
          ctx.attempts.push({ deployment: dep.id, outcome: 'circuit_open', durationMs: 0 });
          metrics.upstreamAttempts.inc({ deployment: dep.id, outcome: 'circuit_open' });
          ctx.trace?.skipped(dep, 'circuit_open');
          const wait = breaker.retryInMs();
          retryInMs = retryInMs === undefined ? wait : Math.min(retryInMs, wait);
          break;
        }
        const scope = new AttemptScope(client, dep.timeoutMs ?? resilience.attemptTimeoutMs, deadlineAt);
        const t0 = performance.now();
        const span = ctx.trace?.attempt(dep, ctx.operation, retries);
        try {
          const result = await attemptOnce(ctx, dep, scope);
          const ms = performance.now() - t0; // before the span's work: it is the gateway's, not upstream time
          span?.ok(result);
          breaker.onSuccess(ctx.auth?.tenantId);
          ctx.attempts.push({ deployment: dep.id, outcome: 'ok', durationMs: ms });
          metrics.upstreamAttempts.inc({ deployment: dep.id, outcome: 'ok' });
          metrics.upstreamDuration.observe({ deployment: dep.id, outcome: 'ok' }, ms / 1000);
          ctx.servedBy = dep;
          ctx.result = result;
          if (result.kind === 'stream') scope.arm(resilience.streamIdleTimeoutMs, `stream idle for more than ${resilience.streamIdleTimeoutMs}ms`);
          else scope.dispose();
          return;
        } catch (raw) {
          scope.dispose();
          if (!(raw instanceof UpstreamError) && !client.aborted) {
            // Not the upstream's failure: the breaker neither opens nor closes for it.
            breaker.release();
            ctx.attempts.push({ deployment: dep.id, outcome: 'local_error', durationMs: performance.now() - t0 });
            metrics.upstreamAttempts.inc({ deployment: dep.id, outcome: 'local_error' });
            const message = raw instanceof Error ? raw.message : String(raw);
            span?.failed('local_error', new UpstreamError('protocol', message));
            if (isCallersInput(raw)) {
              throw new GatewayError('invalid_request', `The request cannot be sent to the model: ${message}. Reduce its nesting or size.`, { cause: raw });
            }
            last = new UpstreamError('protocol', `the gateway could not complete the call to ${dep.id}: ${message}`, { cause: raw });
            break; // the next deployment (another provider's adapter may handle it)
          }
          const err = raw instanceof UpstreamError ? raw : new UpstreamError('aborted', 'client closed the connection', { cause: raw });
          const ms = performance.now() - t0;
          const outcome = outcomeLabel(err);
          span?.failed(outcome, err);
          ctx.attempts.push({ deployment: dep.id, outcome, durationMs: ms });
          metrics.upstreamAttempts.inc({ deployment: dep.id, outcome });
          metrics.upstreamDuration.observe({ deployment: dep.id, outcome }, ms / 1000);
          if (client.aborted) {
            breaker.release();
            await billAbandoned(ctx, dep);
            throw clientGone(ctx);
          }
          if (err.status === 429 && err.retryAfterMs !== undefined) breakers.markRateLimited(dep.id, err.retryAfterMs);
          if (err.retryable) breaker.onFailure(ctx.auth?.tenantId);
          else breaker.onSuccess(ctx.auth?.tenantId); // upstream is alive; it refused this request
          const decision = decideRetry(err, retries, resilience.retry, opts.random);
          if (decision.action === 'fail') throw rejectedError(err, dep);
          last = err;
          if (decision.action === 'next') break;
          if (decision.delayMs + MIN_ATTEMPT_MS > remaining()) break; // no time left for another try
          try {
            await (opts.sleep ?? sleep)(decision.delayMs, client);
          } catch {
            throw clientGone(ctx);
          }
        }
      }
      if (remaining() < MIN_ATTEMPT_MS) break;
    }
    if (client.aborted) throw clientGone(ctx);
    throw exhaustedError(ctx.body.model, last, retryInMs);
  };
}

/**
 * The client left while `dep` had the request: upstream was called and bills at least the prompt
 * it read, so the request is billed its prompt tokens (admission's estimate, else counted) at
 * that deployment's price, never $0. Usage upstream reports after an abort never reaches us.
 */
async function billAbandoned(ctx: RequestContext, dep: Deployment): Promise<void> {
  if (ctx.usage) return;
  const prompt = ctx.admission?.promptTokens ?? (await estimatePromptTokens(ctx.operation, ctx.body, { imageTokens: dep.price?.imageTokens }).catch(() => 0));
  ctx.usage = { prompt_tokens: prompt, completion_tokens: 0, total_tokens: prompt };
  ctx.usageReported = false;
  ctx.servedBy = dep;
  const price = dep.price ?? ctx.model?.price;
  if (price) ctx.costPico = costPico(ctx.usage, price) + (ctx.cache?.embedCostPico ?? 0) + (ctx.discarded?.costPico ?? 0);
}

function clientGone(ctx: RequestContext): GatewayError {
  ctx.clientAborted = true;
  return new GatewayError('upstream_error', 'The client closed the connection.', { status: 499 });
}
