/**
 * The provider contract. The gateway's lingua franca is the OpenAI Chat Completions shape: every
 * adapter takes and returns these types, translating to its own wire protocol inside. Nothing
 * outside src/providers/<adapter>/ knows a provider's native format.
 *
 * Part of the contract:
 *  - `chat` resolves with a complete response or rejects with an {@link UpstreamError}.
 *  - `chatStream` resolves once upstream has accepted the request (status 2xx and headers
 *    received) and rejects with an {@link UpstreamError} otherwise; the returned iterable yields
 *    OpenAI chunks. A failure after that is thrown from the iterator as an UpstreamError with
 *    `phase: 'stream'`. Adapters always ask upstream for usage, so the last chunk carries
 *    `usage` whenever upstream can report it.
 *  - Every call honours `signal`: aborting it cancels the upstream request and frees the socket.
 *  - Adapters never retry, time out or fall back on their own: that is src/resilience/ and the
 *    invoke stage's job.
 * Private to each adapter: connection pools, auth headers, wire translation.
 */

export type Role = 'system' | 'developer' | 'user' | 'assistant' | 'tool' | 'function';

export interface TextContentPart {
  type: 'text';
  text: string;
}
export interface ImageContentPart {
  type: 'image_url';
  image_url: { url: string; detail?: string };
}
export type ContentPart = TextContentPart | ImageContentPart | { type: string; [k: string]: unknown };

export interface ToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

export interface ChatMessage {
  role: Role;
  content: string | ContentPart[] | null;
  name?: string;
  tool_calls?: ToolCall[];
  tool_call_id?: string;
  [k: string]: unknown;
}

export interface ToolDefinition {
  type: 'function';
  function: { name: string; description?: string; parameters?: Record<string, unknown>; strict?: boolean };
}

export interface ChatCompletionRequest {
  model: string;
  messages: ChatMessage[];
  stream?: boolean;
  stream_options?: { include_usage?: boolean } | null;
  max_tokens?: number | null;
  max_completion_tokens?: number | null;
  temperature?: number | null;
  top_p?: number | null;
  n?: number | null;
  stop?: string | string[] | null;
  seed?: number | null;
  presence_penalty?: number | null;
  frequency_penalty?: number | null;
  tools?: ToolDefinition[];
  tool_choice?: 'none' | 'auto' | 'required' | { type: 'function'; function: { name: string } };
  response_format?: { type: 'text' | 'json_object' | 'json_schema'; json_schema?: unknown };
  user?: string;
  [k: string]: unknown;
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details?: { cached_tokens?: number };
  completion_tokens_details?: { reasoning_tokens?: number };
}

export type FinishReason = 'stop' | 'length' | 'tool_calls' | 'content_filter' | 'function_call';

export interface ChatCompletionChoice {
  index: number;
  message: { role: 'assistant'; content: string | null; tool_calls?: ToolCall[]; refusal?: string | null };
  finish_reason: FinishReason | null;
  logprobs?: unknown;
}

export interface ChatCompletion {
  id: string;
  object: 'chat.completion';
  created: number;
  model: string;
  choices: ChatCompletionChoice[];
  usage?: Usage;
  system_fingerprint?: string | null;
}

export interface ChunkToolCallDelta {
  index: number;
  id?: string;
  type?: 'function';
  function?: { name?: string; arguments?: string };
}

export interface ChatCompletionChunk {
  id: string;
  object: 'chat.completion.chunk';
  created: number;
  model: string;
  choices: Array<{
    index: number;
    delta: { role?: 'assistant'; content?: string | null; tool_calls?: ChunkToolCallDelta[]; refusal?: string | null };
    finish_reason: FinishReason | null;
    logprobs?: unknown;
  }>;
  usage?: Usage | null;
  system_fingerprint?: string | null;
}

export interface EmbeddingRequest {
  model: string;
  input: string | string[] | number[] | number[][];
  encoding_format?: 'float' | 'base64';
  dimensions?: number;
  user?: string;
}

export interface EmbeddingResponse {
  object: 'list';
  data: Array<{ object: 'embedding'; index: number; embedding: number[] | string }>;
  model: string;
  usage: { prompt_tokens: number; total_tokens: number };
}

export interface CallOptions {
  /** Aborts the upstream call (client disconnect, timeout, deadline). */
  signal: AbortSignal;
  /** The model name the provider knows (the deployment's upstream model). */
  upstreamModel: string;
  /** The gateway request id, forwarded upstream as x-request-id where the protocol allows. */
  requestId?: string;
}

/**
 * The exact JSON text upstream sent for an object an adapter passes on unchanged (a completion,
 * a stream chunk, an embeddings answer), so the gateway can forward it without serializing it
 * again. Symbol-keyed, so JSON.stringify ignores it. Rule: whoever changes such an object after
 * the adapter returned it must `delete obj[RAW_JSON]`.
 */
export const RAW_JSON: unique symbol = Symbol('tollgate.rawJson');

/** The forwarded text of `obj`: its upstream JSON when unchanged, else freshly serialized. */
export function toJsonText(obj: object): string {
  return (obj as { [RAW_JSON]?: string })[RAW_JSON] ?? JSON.stringify(obj);
}

/** A provider's chat stream: the chunks in order; iterate once. */
export type ChunkStream = AsyncIterable<ChatCompletionChunk>;

export interface Provider {
  /** The provider's id in config (e.g. `openai`, `sim`). */
  readonly id: string;
  /** The wire protocol. */
  readonly kind: 'openai-compatible' | 'anthropic' | 'simulated';
  chat(req: ChatCompletionRequest, opts: CallOptions): Promise<ChatCompletion>;
  chatStream(req: ChatCompletionRequest, opts: CallOptions): Promise<ChunkStream>;
  embed(req: EmbeddingRequest, opts: CallOptions): Promise<EmbeddingResponse>;
  /** Releases sockets and timers. */
  close(): Promise<void>;
}

export type UpstreamFailureKind =
  /** upstream answered with a non-2xx status */
  | 'http'
  /** the attempt's timer fired */
  | 'timeout'
  /** connect refused, reset, DNS... */
  | 'connection'
  /** the body (JSON or SSE) could not be parsed */
  | 'protocol'
  /** the caller aborted (client went away) */
  | 'aborted';

/**
 * The gateway could not build the upstream request from the caller's input (too deeply nested
 * or too large to serialize, not translatable to the provider's protocol). Not the upstream's
 * failure: the caller's 400, never retried, never counted by a circuit breaker.
 */
export class LocalRequestError extends Error {
  constructor(message: string, opts: { cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'LocalRequestError';
  }
}

/** A request body as JSON text; a body that cannot be serialized is a {@link LocalRequestError}. */
export function serializeRequest(body: unknown): string {
  try {
    return JSON.stringify(body);
  } catch (err) {
    throw new LocalRequestError(`the request cannot be serialized for the upstream model (${err instanceof Error ? err.message : String(err)})`, { cause: err });
  }
}

/** A failed upstream call, normalized across providers. */
export class UpstreamError extends Error {
  readonly kind: UpstreamFailureKind;
  readonly status: number | undefined;
  /** Milliseconds upstream asked us to wait (Retry-After / retry-after-ms), if it said. */
  readonly retryAfterMs: number | undefined;
  /** Whether the request reached the stream phase (bytes already flowed). */
  readonly phase: 'request' | 'stream';
  /** The upstream error body's message, for logs and for passing 4xx through. */
  readonly upstreamMessage: string | undefined;

  constructor(
    kind: UpstreamFailureKind,
    message: string,
    opts: {
      status?: number;
      retryAfterMs?: number;
      phase?: 'request' | 'stream';
      upstreamMessage?: string;
      cause?: unknown;
    } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'UpstreamError';
    this.kind = kind;
    this.status = opts.status;
    this.retryAfterMs = opts.retryAfterMs;
    this.phase = opts.phase ?? 'request';
    this.upstreamMessage = opts.upstreamMessage;
  }

  /** Worth retrying or falling back: timeouts, connection failures, 408, 409, 429 and 5xx. */
  get retryable(): boolean {
    if (this.kind === 'aborted') return false;
    if (this.kind !== 'http') return true;
    const s = this.status ?? 0;
    return s === 408 || s === 409 || s === 429 || s >= 500;
  }
}

/**
 * Parses a Retry-After value (delta-seconds or HTTP date) and OpenAI's `retry-after-ms`.
 * Returns milliseconds, or undefined when absent or unparseable.
 */
export function parseRetryAfter(
  retryAfter: string | string[] | undefined,
  retryAfterMs?: string | string[] | undefined,
  now: number = Date.now(),
): number | undefined {
  const ms = Array.isArray(retryAfterMs) ? retryAfterMs[0] : retryAfterMs;
  if (ms !== undefined && ms.trim() !== '') {
    const n = Number(ms);
    if (Number.isFinite(n) && n >= 0) return n;
  }
  const v = Array.isArray(retryAfter) ? retryAfter[0] : retryAfter;
  if (v === undefined || v.trim() === '') return undefined;
  const secs = Number(v);
  if (Number.isFinite(secs)) return secs >= 0 ? secs * 1000 : undefined;
  const date = Date.parse(v);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}
