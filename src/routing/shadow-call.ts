/**
 * One shadow call (src/routing/shadow.ts): the candidate model's deployments tried in order, non-
 * streaming, within one deadline, and how a failed call is recorded (its status and error text).
 * Providers are called directly: the user's circuit breakers never see a shadow call.
 */
import type { ChatCompletion, ChatCompletionRequest } from '../providers/types.js';
import { UpstreamError } from '../providers/types.js';
import type { Deployment } from './catalog.js';

export interface CallResult {
  completion: ChatCompletion;
  deployment: Deployment;
  attempts: number;
}

/** A shadow call that no deployment answered: the last upstream error, and how far it got. */
export class ShadowCallError extends Error {
  constructor(
    readonly upstream: UpstreamError,
    readonly attempts: number,
    readonly deployment: Deployment | undefined,
  ) {
    super(upstream.message);
  }
}

/**
 * The candidate's deployments in order, within one deadline (`timeoutMs`); a non-retryable refusal
 * stops. `stopping` aborts the call (shutdown). Throws a {@link ShadowCallError}.
 */
export async function callCandidate(
  deployments: readonly Deployment[],
  body: ChatCompletionRequest,
  requestId: string,
  opts: { timeoutMs: number; stopping: AbortSignal },
): Promise<CallResult> {
  const req: ChatCompletionRequest = { ...body, stream: false };
  delete req.stream_options;
  const controller = new AbortController();
  const timer = setTimeout(
    () => controller.abort(new UpstreamError('timeout', `shadow call timed out after ${opts.timeoutMs}ms`)),
    opts.timeoutMs,
  );
  timer.unref();
  const onStop = () => controller.abort(opts.stopping.reason);
  opts.stopping.addEventListener('abort', onStop, { once: true });
  let attempts = 0;
  let last: UpstreamError | undefined;
  let lastDep: Deployment | undefined;
  try {
    for (const dep of deployments) {
      if (controller.signal.aborted) break;
      attempts++;
      lastDep = dep;
      try {
        const completion = await dep.provider.chat(
          { ...req, model: dep.model },
          { signal: controller.signal, upstreamModel: dep.upstreamModel, requestId: `${requestId}~shadow` },
        );
        return { completion, deployment: dep, attempts };
      } catch (raw) {
        last = controller.signal.aborted ? toUpstreamError(controller.signal.reason) : toUpstreamError(raw);
        if (!last.retryable) break;
      }
    }
    if (controller.signal.aborted) last = toUpstreamError(controller.signal.reason);
    throw new ShadowCallError(last ?? new UpstreamError('connection', 'no deployment to call'), attempts, lastDep);
  } finally {
    clearTimeout(timer);
    opts.stopping.removeEventListener('abort', onStop);
  }
}

export function toUpstreamError(err: unknown): UpstreamError {
  if (err instanceof UpstreamError) return err;
  return new UpstreamError('protocol', err instanceof Error ? err.message : String(err), { cause: err });
}

/** The status a failed shadow call is recorded with. */
export function failureStatus(err: UpstreamError): number {
  if (err.kind === 'http') return err.status ?? 502;
  if (err.kind === 'timeout') return 504;
  if (err.kind === 'aborted') return 503;
  return 502;
}

/** The error text a failed shadow call is recorded with (at most 500 characters). */
export function describeFailure(err: UpstreamError): string {
  const text = err.kind === 'http' ? `HTTP ${err.status ?? '?'}: ${err.upstreamMessage ?? err.message}` : `${err.kind}: ${err.message}`;
  return text.slice(0, 500);
}
