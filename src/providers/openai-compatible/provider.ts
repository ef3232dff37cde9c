/**
 * The OpenAI-compatible adapter: OpenAI itself, Azure OpenAI, and everything speaking the Chat
 * Completions wire (vLLM, Ollama, LiteLLM, Together, Groq...). The wire is the gateway's own
 * shape, so this adapter only picks the URL and auth, forces the streaming flags the gateway
 * relies on, and checks what comes back.
 */
import type { OpenAICompatibleProviderConfig } from '../../config/schema.js';
import { truncateMessage } from '../http/errors.js';
import { HttpProvider } from '../http/http-provider.js';
import type { SseEvent } from '../http/sse.js';
import { RAW_JSON, UpstreamError } from '../types.js';
import type { CallOptions, ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, ChunkStream, EmbeddingRequest, EmbeddingResponse } from '../types.js';

const isDone = (ev: SseEvent): boolean => ev.data === '[DONE]';

export class OpenAICompatibleProvider extends HttpProvider {
  readonly kind = 'openai-compatible' as const;

  constructor(
    id: string,
    private readonly cfg: OpenAICompatibleProviderConfig,
  ) {
    super(id, cfg, authHeaders(cfg));
  }

  async chat(req: ChatCompletionRequest, opts: CallOptions): Promise<ChatCompletion> {
    const body: ChatCompletionRequest = { ...req, model: opts.upstreamModel, stream: false };
    delete body.stream_options;
    const res = await this.http.postJSON<unknown>(this.path('chat/completions', opts.upstreamModel), body, opts);
    if (!isObject(res) || !Array.isArray(res.choices)) {
      throw new UpstreamError('protocol', 'upstream chat completion has no choices array');
    }
    return res as unknown as ChatCompletion;
  }

  async chatStream(req: ChatCompletionRequest, opts: CallOptions): Promise<ChunkStream> {
    const body: ChatCompletionRequest = {
      ...req,
      model: opts.upstreamModel,
      stream: true,
      stream_options: { ...(req.stream_options ?? {}), include_usage: true },
    };
    return this.postStream(this.path('chat/completions', opts.upstreamModel), body, opts, isDone, toChunks);
  }

  async embed(req: EmbeddingRequest, opts: CallOptions): Promise<EmbeddingResponse> {
    const body: EmbeddingRequest = { ...req, model: opts.upstreamModel };
    const res = await this.http.postJSON<unknown>(this.path('embeddings', opts.upstreamModel), body, opts);
    if (!isObject(res) || !Array.isArray(res.data)) {
      throw new UpstreamError('protocol', 'upstream embeddings response has no data array');
    }
    return res as unknown as EmbeddingResponse;
  }

  /** The path under baseUrl: `/chat/completions`, or Azure's per-deployment route. */
  private path(operation: 'chat/completions' | 'embeddings', upstreamModel: string): string {
    if (!this.cfg.azure) return `/${operation}`;
    const version = encodeURIComponent(this.cfg.azure.apiVersion);
    return `/openai/deployments/${encodeURIComponent(upstreamModel)}/${operation}?api-version=${version}`;
  }
}

/** `Authorization: Bearer`, or Azure's `api-key` header; none without an API key. */
function authHeaders(cfg: OpenAICompatibleProviderConfig): Record<string, string> {
  if (cfg.apiKey === undefined || cfg.apiKey === '') return {};
  return cfg.azure ? { 'api-key': cfg.apiKey } : { authorization: `Bearer ${cfg.apiKey}` };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** SSE events -> chunks, until `[DONE]` (the HTTP layer ends the events there). */
async function* toChunks(events: AsyncIterable<SseEvent>): AsyncGenerator<ChatCompletionChunk, void, undefined> {
  for await (const ev of events) {
    if (ev.data === '[DONE]') return;
    if (ev.data.trim() === '') continue;
    let parsed: unknown;
    try {
      parsed = JSON.parse(ev.data);
    } catch (err) {
      throw new UpstreamError('protocol', 'upstream sent an invalid JSON stream chunk', { phase: 'stream', cause: err });
    }
    if (!isObject(parsed)) {
      throw new UpstreamError('protocol', 'upstream sent a stream chunk that is not an object', { phase: 'stream' });
    }
    // vLLM, LiteLLM, OpenRouter and OpenAI itself report failures after the 200 in-band.
    if (parsed.error !== undefined && parsed.choices === undefined) throw inBandError(parsed.error);
    if (!Array.isArray(parsed.choices)) {
      throw new UpstreamError('protocol', 'upstream stream chunk has no choices array', { phase: 'stream' });
    }
    (parsed as { [RAW_JSON]?: string })[RAW_JSON] = ev.data;
    yield parsed as unknown as ChatCompletionChunk;
  }
}

function inBandError(error: unknown): UpstreamError {
  let message = 'upstream reported an error mid-stream';
  let status = 500;
  if (typeof error === 'string') message = error;
  else if (isObject(error)) {
    if (typeof error.message === 'string' && error.message !== '') message = error.message;
    const code = typeof error.code === 'number' ? error.code : Number(error.code);
    if (Number.isInteger(code) && code >= 400 && code <= 599) status = code;
  }
  const upstreamMessage = truncateMessage(message);
  return new UpstreamError('http', `upstream error mid-stream: ${upstreamMessage}`, {
    status,
    phase: 'stream',
    upstreamMessage,
  });
}
