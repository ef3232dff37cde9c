/**
 * The OpenAI-compatible adapter's test fixtures (src/providers/openai-compatible/*.test.ts): an
 * adapter on the fake upstream, the request and call options the tests send, and stream chunks.
 */
import type { OpenAICompatibleProviderConfig } from '../../src/config/schema.js';
import { OpenAICompatibleProvider } from '../../src/providers/openai-compatible/provider.js';
import type { ChatCompletionChunk, ChatCompletionRequest } from '../../src/providers/types.js';
import type { FakeUpstream } from './fake-upstream.js';

/** A factory of adapters on `upstream`'s `/v1` (key `sk-test`), each closed after its test. */
export function openAIProvider(upstream: FakeUpstream) {
  return (cfg: Partial<OpenAICompatibleProviderConfig> = {}): OpenAICompatibleProvider =>
    upstream.track(
      new OpenAICompatibleProvider('test', {
        kind: 'openai-compatible',
        baseUrl: `${upstream.url}/v1`,
        apiKey: 'sk-test',
        headers: {},
        maxConnections: 4,
        keepAliveTimeoutMs: 10_000,
        ...cfg,
      }),
    );
}

export const request: ChatCompletionRequest = {
  model: 'public-name',
  messages: [{ role: 'user', content: 'hi' }],
  max_tokens: 16,
};

export const opts = (signal: AbortSignal = new AbortController().signal) => ({ signal, upstreamModel: 'gpt-up', requestId: 'req-123' });

export function chunk(content: string | null, finish: string | null = null, usage?: unknown): ChatCompletionChunk {
  return {
    id: 'chatcmpl-1',
    object: 'chat.completion.chunk',
    created: 1,
    model: 'gpt-up',
    choices: usage ? [] : [{ index: 0, delta: content === null ? {} : { content }, finish_reason: finish as null }],
    ...(usage ? { usage: usage as ChatCompletionChunk['usage'] } : {}),
  };
}
