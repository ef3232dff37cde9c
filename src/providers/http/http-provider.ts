/**
 * The common part of the HTTP provider adapters (OpenAI-compatible, Anthropic): one HttpClient per
 * provider, sending the adapter's own headers (auth, API version) under the configured ones;
 * streams whose chunks are translated from the SSE events and whose early end closes the upstream
 * request; and close(). Adapters add their paths, bodies and wire translation.
 */
import type { CallOptions, ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, ChunkStream, EmbeddingRequest, EmbeddingResponse, Provider } from '../types.js';
import { cancellable } from './cancellable.js';
import { HttpClient } from './client.js';
import type { SseEvent } from './sse.js';

/** What the config of every HTTP provider has. */
export interface HttpProviderConfig {
  baseUrl: string;
  /** Extra headers sent with every request; they override the adapter's own. */
  headers?: Record<string, string> | undefined;
  maxConnections: number;
  keepAliveTimeoutMs: number;
}

/** SSE events -> chunks of the gateway's shape. */
export type ChunkTranslation = (events: AsyncIterable<SseEvent>) => AsyncGenerator<ChatCompletionChunk, void, undefined>;

export abstract class HttpProvider implements Provider {
  abstract readonly kind: Provider['kind'];
  protected readonly http: HttpClient;

  /** `own`: the adapter's headers (auth, API version), lower-case names. */
  constructor(
    readonly id: string,
    cfg: HttpProviderConfig,
    own: Record<string, string>,
  ) {
    const headers = { ...own };
    // Configured headers win: they may carry a custom auth scheme (e.g. an Entra ID token).
    for (const [k, v] of Object.entries(cfg.headers ?? {})) headers[k.toLowerCase()] = v;
    this.http = new HttpClient({
      baseUrl: cfg.baseUrl,
      maxConnections: cfg.maxConnections,
      keepAliveTimeoutMs: cfg.keepAliveTimeoutMs,
      headers,
    });
  }

  abstract chat(req: ChatCompletionRequest, opts: CallOptions): Promise<ChatCompletion>;
  abstract chatStream(req: ChatCompletionRequest, opts: CallOptions): Promise<ChunkStream>;
  abstract embed(req: EmbeddingRequest, opts: CallOptions): Promise<EmbeddingResponse>;

  close(): Promise<void> {
    return this.http.close();
  }

  /**
   * POSTs a streaming request whose last event is `isTerminal`; the stream yields `translate`'s
   * chunks, and a consumer that stops early (break, return(), error) aborts the upstream request.
   */
  protected async postStream(path: string, body: unknown, opts: CallOptions, isTerminal: (event: SseEvent) => boolean, translate: ChunkTranslation): Promise<ChunkStream> {
    const events = await this.http.postSSE(path, body, { signal: opts.signal, requestId: opts.requestId, isTerminal });
    return cancellable(translate(events), () => void events.return?.());
  }
}
