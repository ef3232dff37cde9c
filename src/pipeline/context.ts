/**
 * The request context: everything the stages of one AI request know and decide. Created by the
 * HTTP route (or, later, a job worker) and threaded through src/pipeline/pipeline.ts.
 */
import type { AuthInfo } from '../auth/authenticator.js';
import type { GatewayError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type {
  ChatCompletion,
  ChatCompletionChunk,
  ChatCompletionRequest,
  EmbeddingRequest,
  EmbeddingResponse,
  Usage,
} from '../providers/types.js';
import type { CatalogModel, Deployment } from '../routing/catalog.js';

export type Operation = 'chat' | 'embeddings';

/** Where the response goes: an HTTP reply, or (later) a job's result. */
export interface ResponseSink {
  /** Aborted when the client goes away before the response is complete. */
  readonly signal: AbortSignal;
  /** Whether the status line has been sent (no fallback or error status possible after this). */
  readonly committed: boolean;
  /** Sends `body` (its upstream text when it carries RAW_JSON, see providers/types.ts). */
  sendJson(status: number, headers: Record<string, string>, body: object): void;
  openStream(headers: Record<string, string>, trailerNames?: string[]): SseWriter;
}

export interface SseWriter {
  /** Writes one SSE `data:` event; resolves when the socket can take more (backpressure). */
  send(data: string): Promise<void>;
  /** Ends the stream, with HTTP trailers when the transport supports them. */
  end(trailers?: Record<string, string>): void;
}

/** One upstream attempt, as reported in logs, metrics and x-tollgate-attempts. */
export interface AttemptRecord {
  deployment: string;
  /** ok, or the failure kind (http_500, timeout, connection, circuit_open...). */
  outcome: string;
  durationMs: number;
}

export type PipelineResult =
  | { kind: 'chat'; body: ChatCompletion }
  | { kind: 'embeddings'; body: EmbeddingResponse }
  | {
      kind: 'stream';
      first: ChatCompletionChunk;
      rest: AsyncIterator<ChatCompletionChunk>;
      /** Restarts the idle timer (each chunk) and frees it (end of stream). */
      idle: { rearm(ms?: number): void; dispose(): void };
    };

export interface RequestContext {
  readonly id: string;
  readonly operation: Operation;
  /** The HTTP route, for metrics and logs. */
  readonly route: string;
  /** performance.now() at arrival. */
  readonly startedAt: number;
  /** Date.now() at arrival. */
  readonly receivedAt: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: ChatCompletionRequest | EmbeddingRequest;
  readonly sink: ResponseSink;
  readonly log: Logger;

  auth?: AuthInfo;
  /** The end user: the key's fixed user id, else the request's `user`. */
  endUser?: string | null;
  model?: CatalogModel;
  /** The deployments to try, in order. */
  chain?: Deployment[];
  attempts: AttemptRecord[];
  /** The deployment that answered. */
  servedBy?: Deployment;
  result?: PipelineResult;
  usage?: Usage;
  /** Integer pico-dollars, once usage is known. */
  costPico?: number;
  ttftMs?: number;
  status?: number;
  error?: GatewayError;
  /** Why a started stream ended badly (error event sent), if it did. */
  streamError?: GatewayError;
  /** Set when the client went away before the end. */
  clientAborted?: boolean;
}

export function isChat(ctx: RequestContext): ctx is RequestContext & { body: ChatCompletionRequest } {
  return ctx.operation === 'chat';
}
