/**
 * The Anthropic adapter: the Messages API (`POST /v1/messages`) over the shared HTTP/SSE base,
 * with the wire translation in translate-request.ts, translate-response.ts and
 * translate-stream.ts.
 */
import type { AnthropicProviderConfig } from '../../config/schema.js';
import { HttpClient } from '../http/client.js';
import { cancellable } from '../http/cancellable.js';
import type { SseEvent } from '../http/sse.js';
import {
  UpstreamError,
  type CallOptions,
  type ChatCompletion,
  type ChatCompletionChunk,
  type ChatCompletionRequest,
  type ChunkStream,
  type EmbeddingRequest,
  type EmbeddingResponse,
  type Provider,
} from '../types.js';
import { toAnthropicRequest } from './translate-request.js';
import { fromAnthropicMessage, isAnthropicMessage } from './translate-response.js';
import { AnthropicStreamTranslator, isMessageStop } from './translate-stream.js';

const MESSAGES_PATH = '/v1/messages';

export class AnthropicProvider implements Provider {
  readonly kind = 'anthropic' as const;
  private readonly http: HttpClient;

  constructor(
    readonly id: string,
    private readonly cfg: AnthropicProviderConfig,
  ) {
    const headers: Record<string, string> = { 'anthropic-version': cfg.version };
    if (cfg.apiKey !== undefined && cfg.apiKey !== '') headers['x-api-key'] = cfg.apiKey;
    for (const [k, v] of Object.entries(cfg.headers ?? {})) headers[k.toLowerCase()] = v;
    this.http = new HttpClient({
      baseUrl: cfg.baseUrl,
      maxConnections: cfg.maxConnections,
      keepAliveTimeoutMs: cfg.keepAliveTimeoutMs,
      headers,
    });
  }

  async chat(req: ChatCompletionRequest, opts: CallOptions): Promise<ChatCompletion> {
    const body = toAnthropicRequest(req, { model: opts.upstreamModel, defaultMaxTokens: this.cfg.defaultMaxTokens });
    const res = await this.http.postJSON<unknown>(MESSAGES_PATH, body, opts);
    if (!isAnthropicMessage(res)) throw new UpstreamError('protocol', 'upstream answer is not an anthropic message');
    return fromAnthropicMessage(res);
  }

  async chatStream(req: ChatCompletionRequest, opts: CallOptions): Promise<ChunkStream> {
    const body = {
      ...toAnthropicRequest(req, { model: opts.upstreamModel, defaultMaxTokens: this.cfg.defaultMaxTokens }),
      stream: true,
    };
    const events = await this.http.postSSE(MESSAGES_PATH, body, {
      signal: opts.signal,
      requestId: opts.requestId,
      isTerminal: isMessageStop,
    });
    const translator = new AnthropicStreamTranslator({ model: opts.upstreamModel });
    return cancellable(translate(events, translator), () => void events.return?.());
  }

  embed(_req: EmbeddingRequest, _opts: CallOptions): Promise<EmbeddingResponse> {
    return Promise.reject(new UpstreamError('http', 'anthropic does not serve embeddings', {
        status: 400,
        upstreamMessage: 'anthropic does not serve embeddings',
      }));
  }

  close(): Promise<void> {
    return this.http.close();
  }
}

async function* translate(
  events: AsyncIterable<SseEvent>,
  translator: AnthropicStreamTranslator,
): AsyncGenerator<ChatCompletionChunk, void, undefined> {
  for await (const ev of events) {
    for (const chunk of translator.push(ev)) yield chunk;
  }
}
