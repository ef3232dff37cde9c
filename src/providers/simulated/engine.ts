/**
 * SimEngine: the simulator's logic, shared by the in-process provider and the HTTP server.
 * It validates requests, decides each request's outcome (scripted first, then drawn from the
 * fault rates), plans deterministic answers, samples latency and keeps statistics. It owns no
 * timers and no sockets: waiting, streaming and aborting are the caller's job.
 */
import { randomBytes } from 'node:crypto';
import { decode } from 'gpt-tokenizer';
import type { z } from 'zod';
import { faultSchema, simModelSchema, type FaultConfig, type SimModelConfig } from '../../config/schema.js';
import type { EmbeddingRequest, EmbeddingResponse } from '../types.js';
import { planChat, validateChatRequest, type ChatPlan, type ScriptedAnswer } from './chat.js';
import { embedText, toBase64 } from './embeddings.js';
import { drawOutcome, outcomeError, SimError, type SimOutcome } from './outcomes.js';
import { sampleLogNormal } from './random.js';
import { SIM_EXACT_CHARS, countTextTokens } from './text.js';

export interface SimEngineOptions {
  /** The models served, by name (omitted fields take the schema's defaults). */
  models: Record<string, z.input<typeof simModelSchema>>;
  /** Fault rates (omitted fields take the schema's defaults). */
  faults: z.input<typeof faultSchema>;
  /** Source of randomness for faults and latency (answers are seeded from the request). */
  random?: () => number;
  /** Scripted answers: a class of questions -> one answer (see ScriptedAnswer). */
  answers?: readonly ScriptedAnswer[];
}

export interface SimStats {
  /** Requests received (including invalid ones). */
  total: number;
  /** Requests by the model they named. */
  byModel: Record<string, number>;
  /** Answered in full. */
  completed: number;
  /** The caller went away (or aborted) before the end. */
  aborted: number;
  /** Ended by an error answer, a reset or a broken stream. */
  failed: number;
  inFlight: number;
  /** Outcomes decided, by kind. */
  outcomes: Record<SimOutcome['kind'], number>;
  /** The last 50 request bodies as received, oldest first. */
  recentRequests: unknown[];
  /** Usage the simulator reported to callers (answers that carried it and were sent in full). */
  reportedUsage: { answers: number; promptTokens: number; completionTokens: number };
}

/** Tracks one request in the stats; the first of complete/abort/fail wins. */
export interface SimRequestTracker {
  readonly ended: boolean;
  /** Answered in full; `usage` when the answer reported it to the caller. */
  complete(usage?: { prompt_tokens: number; completion_tokens?: number }): void;
  abort(): void;
  fail(): void;
}

/** What to do with a request, decided up front. */
export type SimAttempt<T> =
  | { kind: 'error'; error: SimError }
  | { kind: 'hang' }
  | { kind: 'reset' }
  | {
      kind: 'answer';
      answer: T;
      /** Break after this many chunks (streams) or mid-body (JSON answers). */
      breakAfter: number | undefined;
      /** Wait before the first byte. */
      ttftMs: number;
      /** Wait between two paced stream chunks (0 = no wait). */
      interTokenMs: number;
    };

const RECENT_REQUESTS = 50;

function emptyOutcomes(): Record<SimOutcome['kind'], number> {
  return { ok: 0, error: 0, hang: 0, reset: 0, break: 0 };
}

export class SimEngine {
  readonly models: Record<string, SimModelConfig>;
  private faultConfig: FaultConfig;
  private readonly random: () => number;
  private readonly scripted: SimOutcome[] = [];
  private readonly idPrefix = randomBytes(4).toString('hex');
  private sequence = 0;
  private counters = { total: 0, completed: 0, aborted: 0, failed: 0, inFlight: 0 };
  private byModel: Record<string, number> = {};
  private outcomeCounts = emptyOutcomes();
  private recent: unknown[] = [];
  private reported = { answers: 0, promptTokens: 0, completionTokens: 0 };
  private epoch = 0;
  private answerRules: ScriptedAnswer[] = [];

  constructor(opts: SimEngineOptions) {
    this.answerRules = [...(opts.answers ?? [])];
    this.models = {};
    for (const [name, m] of Object.entries(opts.models)) this.models[name] = simModelSchema.parse(m);
    this.faultConfig = faultSchema.parse(opts.faults);
    this.random = opts.random ?? Math.random;
  }

  /** The fault rates in force. */
  get faults(): FaultConfig {
    return this.faultConfig;
  }

  /** Replaces the fault rates (omitted fields take their defaults). Throws a ZodError when invalid. */
  setFaults(faults: z.input<typeof faultSchema>): void {
    this.faultConfig = faultSchema.parse(faults);
  }

  /**
   * Replaces the scripted answers: a chat request whose last user message matches a rule gets its
   * answer (first match wins); others get the usual generated text. Kept across reset(), like the faults.
   */
  setAnswers(answers: readonly ScriptedAnswer[]): void {
    this.answerRules = [...answers];
  }

  /** Queues outcomes that the next requests take, in order, before any random draw. */
  script(outcomes: readonly SimOutcome[]): void {
    this.scripted.push(...outcomes);
  }

  /** Outcomes still queued. */
  get scriptedLeft(): number {
    return this.scripted.length;
  }

  /** Clears the script and the stats. Requests still in flight stay counted in `inFlight`; how they end is not counted. */
  reset(): void {
    this.scripted.length = 0;
    this.epoch++;
    this.counters = { total: 0, completed: 0, aborted: 0, failed: 0, inFlight: this.counters.inFlight };
    this.byModel = {};
    this.outcomeCounts = emptyOutcomes();
    this.recent = [];
    this.reported = { answers: 0, promptTokens: 0, completionTokens: 0 };
  }

  stats(): SimStats {
    return {
      ...this.counters,
      byModel: { ...this.byModel },
      outcomes: { ...this.outcomeCounts },
      recentRequests: [...this.recent],
      reportedUsage: { ...this.reported },
    };
  }

  /** Records a request as received and returns its tracker. */
  begin(body: unknown): SimRequestTracker {
    this.counters.total++;
    this.counters.inFlight++;
    const model = body && typeof body === 'object' ? (body as { model?: unknown }).model : undefined;
    if (typeof model === 'string') this.byModel[model] = (this.byModel[model] ?? 0) + 1;
    this.recent.push(body);
    if (this.recent.length > RECENT_REQUESTS) this.recent.shift();
    let ended = false;
    const epoch = this.epoch;
    const end = (field: 'completed' | 'aborted' | 'failed') => () => {
      if (ended) return;
      ended = true;
      this.counters.inFlight--;
      // A request begun before a reset() leaves the new counts alone.
      if (epoch === this.epoch) this.counters[field]++;
    };
    const completed = end('completed');
    return {
      get ended() {
        return ended;
      },
      complete: (usage) => {
        if (ended) return;
        completed();
        if (usage && epoch === this.epoch) {
          this.reported.answers++;
          this.reported.promptTokens += usage.prompt_tokens;
          this.reported.completionTokens += usage.completion_tokens ?? 0;
        }
      },
      abort: end('aborted'),
      fail: end('failed'),
    };
  }

  /** The next outcome: the script's head, else a draw from the fault rates. */
  nextOutcome(stream: boolean): SimOutcome {
    const outcome = this.scripted.shift() ?? drawOutcome(this.faultConfig, this.random, stream);
    this.outcomeCounts[outcome.kind]++;
    return outcome;
  }

  /** A fresh response id, e.g. `chatcmpl-sim-3fa2c1d0000001a`. */
  newId(prefix = 'chatcmpl-sim-'): string {
    this.sequence++;
    return `${prefix}${this.idPrefix}${this.sequence.toString(16).padStart(7, '0')}`;
  }

  /** Time to first token for one request of `model`, in ms. */
  sampleTtftMs(model: SimModelConfig): number {
    return sampleLogNormal(this.random, model.ttftMs.median, model.ttftMs.p95);
  }

  private resolveModel(name: string, type: 'chat' | 'embedding'): SimModelConfig {
    const model = this.models[name];
    if (!model) {
      throw new SimError(404, `The model '${name}' does not exist or you do not have access to it.`, {
        code: 'model_not_found',
        param: 'model',
      });
    }
    if (model.type !== type) {
      const what = type === 'chat' ? 'a chat model' : 'an embedding model';
      throw new SimError(400, `The model '${name}' is not ${what}.`, { code: 'invalid_model', param: 'model' });
    }
    return model;
  }

  private attempt<T>(stream: boolean, model: SimModelConfig, answer: () => T): SimAttempt<T> {
    const outcome = this.nextOutcome(stream);
    switch (outcome.kind) {
      case 'error':
        return { kind: 'error', error: outcomeError(outcome, this.faultConfig) };
      case 'hang':
      case 'reset':
        return { kind: outcome.kind };
      default:
        return {
          kind: 'answer',
          answer: answer(),
          breakAfter: outcome.kind === 'break' ? outcome.afterChunks : undefined,
          ttftMs: this.sampleTtftMs(model),
          interTokenMs: model.tokensPerSecond > 0 ? 1000 / model.tokensPerSecond : 0,
        };
    }
  }

  /** Decides a chat request: invalid (400/404), a fault, or an answer plan with its latency. */
  prepareChat(body: unknown, stream: boolean): SimAttempt<ChatPlan> {
    try {
      validateChatRequest(body);
      const req = body;
      const model = this.resolveModel(req.model, 'chat');
      return this.attempt(stream, model, () => planChat(req, model, this.newId(), Math.floor(Date.now() / 1000), this.answerRules));
    } catch (err) {
      if (err instanceof SimError) return { kind: 'error', error: err };
      throw err;
    }
  }

  /** Decides an embeddings request: invalid (400/404), a fault, or the vectors with their latency. */
  prepareEmbedding(body: unknown): SimAttempt<EmbeddingResponse> {
    try {
      const req = validateEmbeddingRequest(body);
      const model = this.resolveModel(req.model, 'embedding');
      return this.attempt(false, model, () => this.embeddings(req, model));
    } catch (err) {
      if (err instanceof SimError) return { kind: 'error', error: err };
      throw err;
    }
  }

  private embeddings(req: EmbeddingRequest, model: SimModelConfig): EmbeddingResponse {
    const dimensions = req.dimensions ?? model.dimensions;
    const inputs = normalizeInput(req.input);
    let promptTokens = 0;
    let exactLeft = SIM_EXACT_CHARS; // one budget of exact counting for the whole request
    const data = inputs.map((input, index) => {
      let text: string;
      if (typeof input === 'string') {
        text = input;
        promptTokens += countTextTokens(text, Math.max(0, exactLeft));
        exactLeft -= text.length;
      } else {
        text = decodeTokens(input, index);
        promptTokens += input.length;
      }
      // Embedding models read the first few thousand tokens of an input: so does the simulator.
      const vector = embedText(text.length > SIM_EXACT_CHARS ? text.slice(0, SIM_EXACT_CHARS) : text, dimensions);
      return { object: 'embedding' as const, index, embedding: req.encoding_format === 'base64' ? toBase64(vector) : vector };
    });
    return { object: 'list', data, model: req.model, usage: { prompt_tokens: promptTokens, total_tokens: promptTokens } };
  }
}

function validateEmbeddingRequest(body: unknown): EmbeddingRequest {
  if (!body || typeof body !== 'object' || Array.isArray(body)) {
    throw new SimError(400, 'The request body must be a JSON object.', { code: 'invalid_request' });
  }
  const b = body as Record<string, unknown>;
  if (typeof b.model !== 'string' || b.model === '') {
    throw new SimError(400, "Missing required parameter: 'model'.", { param: 'model', code: 'missing_required_parameter' });
  }
  const dims = b.dimensions;
  if (dims !== undefined && dims !== null && (typeof dims !== 'number' || !Number.isInteger(dims) || dims < 1 || dims > 8192)) {
    throw new SimError(400, "Invalid 'dimensions': expected an integer between 1 and 8192.", { param: 'dimensions', code: 'invalid_value' });
  }
  if (b.encoding_format !== undefined && b.encoding_format !== 'float' && b.encoding_format !== 'base64') {
    throw new SimError(400, "Invalid 'encoding_format': expected 'float' or 'base64'.", { param: 'encoding_format', code: 'invalid_value' });
  }
  normalizeInput(b.input as EmbeddingRequest['input']);
  return { ...(b as unknown as EmbeddingRequest), dimensions: typeof dims === 'number' ? dims : undefined };
}

/** The inputs of an embeddings request: each a text or a token array. Throws a 400 SimError otherwise. */
function normalizeInput(input: EmbeddingRequest['input'] | undefined): Array<string | number[]> {
  const invalid = () =>
    new SimError(400, "Invalid 'input': expected a string, an array of strings, or token arrays.", { param: 'input', code: 'invalid_value' });
  if (typeof input === 'string') return [input];
  if (!Array.isArray(input) || input.length === 0) throw invalid();
  if (input.every((x) => typeof x === 'string')) return input as string[];
  if (input.every((x) => typeof x === 'number' && Number.isInteger(x))) return [input as number[]];
  if (input.every((x) => Array.isArray(x) && x.every((t) => typeof t === 'number' && Number.isInteger(t)))) {
    return input as number[][];
  }
  throw invalid();
}

function decodeTokens(tokens: number[], index: number): string {
  try {
    return decode(tokens);
  } catch {
    throw new SimError(400, `Invalid 'input[${index}]': unknown token ids.`, { param: 'input', code: 'invalid_value' });
  }
}
