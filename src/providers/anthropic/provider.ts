/**
 * The Anthropic adapter: the Messages API (`POST /v1/messages`) over the shared HTTP/SSE base,
 * with the wire translation in translate-request.ts, translate-response.ts and
 * translate-stream.ts.
 */
import type { AnthropicProviderConfig } from '../../config/schema.js';
import { HttpProvider } from '../http/http-provider.js';
import type { SseEvent } from '../http/sse.js';
import { UpstreamError } from '../types.js';
import type { CallOptions, ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, ChunkStream, EmbeddingRequest, EmbeddingResponse } from '../types.js';
import { toAnthropicRequest } from './translate-request.js';
import { fromAnthropicMessage, isAnthropicMessage } from './translate-response.js';
import { AnthropicStreamTranslator, isMessageStop } from './translate-stream.js';

const MESSAGES_PATH = '/v1/messages';

export class AnthropicProvider extends HttpProvider {
  readonly kind = 'anthropic' as const;

  constructor(
    id: string,
    private readonly cfg: AnthropicProviderConfig,
  ) {
    const own: Record<string, string> = { 'anthropic-version': cfg.version };
    if (cfg.apiKey !== undefined && cfg.apiKey !== '') own['x-api-key'] = cfg.apiKey;
    super(id, cfg, own);
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
    const translator = new AnthropicStreamTranslator({ model: opts.upstreamModel });
    return this.postStream(MESSAGES_PATH, body, opts, isMessageStop, (events) => translate(events, translator));
  }

  embed(_req: EmbeddingRequest, _opts: CallOptions): Promise<EmbeddingResponse> {
    return Promise.reject(new UpstreamError('http', 'anthropic does not serve embeddings', {
        status: 400,
        upstreamMessage: 'anthropic does not serve embeddings',
      }));
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
