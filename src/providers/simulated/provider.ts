/**
 * The simulated provider, in process: the SimEngine's answers, latency and faults behind the
 * Provider contract, without sockets. Faults map to the UpstreamErrors a real adapter would
 * raise: error -> 'http' (with status and Retry-After), reset -> 'connection', break ->
 * 'protocol' in the stream phase, hang -> nothing until the caller's signal aborts.
 */
import { DEFAULT_SIM_MODELS } from '../../config/defaults.js';
import type { SimulatedProviderConfig } from '../../config/schema.js';
import {
  UpstreamError,
  type CallOptions,
  type ChatCompletion,
  type ChatCompletionRequest,
  type ChunkStream,
  type EmbeddingRequest,
  type EmbeddingResponse,
  type Provider,
} from '../types.js';
import { generationSteps, toCompletion, toStreamSteps, type StreamStep } from './chat.js';
import { SimEngine, type SimAttempt, type SimRequestTracker } from './engine.js';
import type { SimError } from './outcomes.js';
import { delay, untilAborted } from './timing.js';

export interface SimulatedProviderOptions {
  /** Source of randomness for faults and latency (tests pass a seeded one). */
  random?: () => number;
}

/** The error a call rejects with once its signal aborted: the signal's UpstreamError reason, or 'aborted'. */
function abortError(reason: unknown): UpstreamError {
  return reason instanceof UpstreamError ? reason : new UpstreamError('aborted', 'request aborted', { cause: reason });
}

function httpError(err: SimError): UpstreamError {
  return new UpstreamError('http', `simulated upstream answered ${err.status}: ${err.message}`, {
    status: err.status,
    retryAfterMs: err.retryAfterSeconds === undefined ? undefined : err.retryAfterSeconds * 1000,
    upstreamMessage: err.message,
  });
}

/** The body as received, detached from the caller's object (which the gateway may still change). */
function snapshot<T>(body: T): T {
  try {
    return structuredClone(body);
  } catch {
    return body;
  }
}

type Answer<T> = Extract<SimAttempt<T>, { kind: 'answer' }>;

export class SimulatedProvider implements Provider {
  readonly kind = 'simulated' as const;
  /** The simulator itself: script outcomes, change faults, read stats. */
  readonly engine: SimEngine;
  private readonly closing = new AbortController();

  constructor(
    readonly id: string,
    cfg: SimulatedProviderConfig,
    opts: SimulatedProviderOptions = {},
  ) {
    this.engine = new SimEngine({ models: cfg.models ?? DEFAULT_SIM_MODELS, faults: cfg.faults, random: opts.random });
  }

  async chat(req: ChatCompletionRequest, opts: CallOptions): Promise<ChatCompletion> {
    const received = this.start({ ...req, model: opts.upstreamModel || req.model }, opts);
    const tracker = this.engine.begin(snapshot(received));
    const body = { ...received, stream: false };
    const answer = await this.accept(this.engine.prepareChat(body, false), tracker, opts.signal);
    const plan = answer.answer;
    await this.wait(answer.ttftMs + generationSteps(plan) * answer.interTokenMs, tracker, opts.signal);
    if (answer.breakAfter !== undefined) {
      tracker.fail();
      throw new UpstreamError('protocol', 'simulated upstream cut the response body short');
    }
    tracker.complete(plan.usage);
    return toCompletion(plan);
  }

  async chatStream(req: ChatCompletionRequest, opts: CallOptions): Promise<ChunkStream> {
    const received = this.start({ ...req, model: opts.upstreamModel || req.model }, opts);
    const tracker = this.engine.begin(snapshot(received));
    // Usage is always reported, whatever the request asked for: the gateway always wants it.
    const body = { ...received, stream: true, stream_options: { include_usage: true } };
    const answer = await this.accept(this.engine.prepareChat(body, true), tracker, opts.signal);
    await this.wait(answer.ttftMs, tracker, opts.signal);
    const steps = toStreamSteps(answer.answer, true);
    const breakAfter = answer.breakAfter === undefined ? undefined : Math.min(answer.breakAfter, steps.length - 1);
    // Counts a stream that is dropped unread as aborted when its signal fires.
    const onAbort = () => tracker.abort();
    opts.signal.addEventListener('abort', onAbort, { once: true });
    return this.iterate(steps, breakAfter, answer.interTokenMs, tracker, opts.signal, onAbort);
  }

  async embed(req: EmbeddingRequest, opts: CallOptions): Promise<EmbeddingResponse> {
    const body = this.start({ ...req, model: opts.upstreamModel || req.model }, opts);
    const tracker = this.engine.begin(snapshot(body));
    const answer = await this.accept(this.engine.prepareEmbedding(body), tracker, opts.signal);
    await this.wait(answer.ttftMs, tracker, opts.signal);
    if (answer.breakAfter !== undefined) {
      tracker.fail();
      throw new UpstreamError('protocol', 'simulated upstream cut the response body short');
    }
    tracker.complete(answer.answer.usage);
    return answer.answer;
  }

  /** Fails every pending wait (hangs included) with a connection error; later calls fail at once. */
  async close(): Promise<void> {
    if (!this.closing.signal.aborted) this.closing.abort(new UpstreamError('connection', `provider ${this.id} closed`));
  }

  private start<T>(body: T, opts: CallOptions): T {
    if (opts.signal.aborted) throw abortError(opts.signal.reason);
    if (this.closing.signal.aborted) throw abortError(this.closing.signal.reason);
    return body;
  }

  /** Turns a fault into its rejection (a hang waits for the abort); passes an answer through. */
  private async accept<T>(attempt: SimAttempt<T>, tracker: SimRequestTracker, signal: AbortSignal): Promise<Answer<T>> {
    switch (attempt.kind) {
      case 'answer':
        return attempt;
      case 'error':
        tracker.fail();
        throw httpError(attempt.error);
      case 'reset':
        tracker.fail();
        throw new UpstreamError('connection', 'simulated upstream reset the connection (ECONNRESET)');
      case 'hang':
        try {
          return await untilAborted(signal, this.closing.signal);
        } catch (reason) {
          tracker.abort();
          throw abortError(reason);
        }
    }
  }

  private async wait(ms: number, tracker: SimRequestTracker, signal: AbortSignal): Promise<void> {
    try {
      await delay(ms, signal, this.closing.signal);
    } catch (reason) {
      tracker.abort();
      throw abortError(reason);
    }
  }

  private async *iterate(
    steps: StreamStep[],
    breakAfter: number | undefined,
    interTokenMs: number,
    tracker: SimRequestTracker,
    signal: AbortSignal,
    onAbort: () => void,
  ): AsyncGenerator<StreamStep['chunk'], void, undefined> {
    try {
      for (let i = 0; i < steps.length; i++) {
        if (i === breakAfter) {
          tracker.fail();
          throw new UpstreamError('protocol', 'simulated upstream broke the stream', { phase: 'stream' });
        }
        const step = steps[i] as StreamStep;
        await this.wait(step.paced ? interTokenMs : 0, tracker, signal);
        // The last chunk delivered completes the request, even if the caller stops right after it.
        if (i === steps.length - 1) tracker.complete(step.chunk.usage ?? undefined);
        yield step.chunk;
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
      if (!tracker.ended) tracker.abort();
    }
  }
}
