/**
 * Anthropic Messages stream events -> OpenAI chat completion chunks. Pure and incremental: feed
 * each SSE event to {@link AnthropicStreamTranslator.push} and forward the chunks it returns.
 *
 *   message_start        -> first chunk, delta { role: 'assistant', content: '' }
 *   content_block_start  -> tool_use: tool_calls delta { index, id, type, function.name }
 *   content_block_delta  -> text_delta: content; input_json_delta: tool_calls arguments
 *   message_delta        -> remembers stop_reason and usage
 *   message_stop         -> a finish_reason chunk, then a usage chunk (choices: [])
 *   ping, unknown events -> nothing
 *   error                -> throws UpstreamError('http', 529 for overloaded_error else 500)
 */
import { UpstreamError, type ChatCompletionChunk, type FinishReason } from '../types.js';
import { truncateMessage } from '../http/errors.js';
import type { SseEvent } from '../http/sse.js';
import type { AnthropicUsage } from './wire.js';
import { toFinishReason, toUsage } from './translate-response.js';

type Delta = ChatCompletionChunk['choices'][number]['delta'];

export interface StreamTranslatorOptions {
  /** Unix seconds stamped on every chunk. */
  created?: number;
  /** Model name used until message_start names one. */
  model?: string;
}

/** Whether an SSE event is Anthropic's terminal `message_stop`. */
export function isMessageStop(ev: SseEvent): boolean {
  if (ev.event !== undefined) return ev.event === 'message_stop';
  return /^\s*\{\s*"type"\s*:\s*"message_stop"/.test(ev.data);
}

export class AnthropicStreamTranslator {
  private readonly created: number;
  private id = '';
  private model: string;
  private usage: AnthropicUsage = {};
  private finishReason: FinishReason | null = null;
  /** Anthropic content block index -> OpenAI tool call index. */
  private readonly toolIndex = new Map<number, number>();
  private toolCount = 0;
  private finished = false;

  constructor(opts: StreamTranslatorOptions = {}) {
    this.created = opts.created ?? Math.floor(Date.now() / 1000);
    this.model = opts.model ?? '';
  }

  /** True once message_stop was translated. */
  get done(): boolean {
    return this.finished;
  }

  push(ev: SseEvent): ChatCompletionChunk[] {
    if (this.finished) return [];
    let data: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(ev.data);
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
      data = parsed as Record<string, unknown>;
    } catch (err) {
      throw new UpstreamError('protocol', `upstream sent an invalid stream event${ev.event ? ` (${ev.event})` : ''}`, {
        phase: 'stream',
        cause: err,
      });
    }
    const type = typeof data.type === 'string' ? data.type : ev.event;
    switch (type) {
      case 'message_start':
        return this.messageStart(data);
      case 'content_block_start':
        return this.blockStart(data);
      case 'content_block_delta':
        return this.blockDelta(data);
      case 'message_delta':
        this.messageDelta(data);
        return [];
      case 'message_stop':
        return this.messageStop();
      case 'error':
        throw streamError(data);
      default:
        // ping, content_block_stop and event types added later.
        return [];
    }
  }

  private messageStart(data: Record<string, unknown>): ChatCompletionChunk[] {
    const msg = asObject(data.message);
    if (typeof msg.id === 'string') this.id = msg.id;
    if (typeof msg.model === 'string') this.model = msg.model;
    this.mergeUsage(msg.usage);
    return [this.chunk({ role: 'assistant', content: '' })];
  }

  private blockStart(data: Record<string, unknown>): ChatCompletionChunk[] {
    const block = asObject(data.content_block);
    const index = typeof data.index === 'number' ? data.index : -1;
    if (block.type === 'tool_use') {
      const toolIndex = this.toolCount++;
      this.toolIndex.set(index, toolIndex);
      return [
        this.chunk({
          tool_calls: [
            {
              index: toolIndex,
              id: typeof block.id === 'string' ? block.id : '',
              type: 'function',
              function: { name: typeof block.name === 'string' ? block.name : '', arguments: '' },
            },
          ],
        }),
      ];
    }
    if (block.type === 'text' && typeof block.text === 'string' && block.text !== '') {
      return [this.chunk({ content: block.text })];
    }
    return [];
  }

  private blockDelta(data: Record<string, unknown>): ChatCompletionChunk[] {
    const delta = asObject(data.delta);
    if (delta.type === 'text_delta' && typeof delta.text === 'string') {
      return delta.text === '' ? [] : [this.chunk({ content: delta.text })];
    }
    if (delta.type === 'input_json_delta' && typeof delta.partial_json === 'string') {
      const index = typeof data.index === 'number' ? this.toolIndex.get(data.index) : undefined;
      if (index === undefined || delta.partial_json === '') return [];
      return [this.chunk({ tool_calls: [{ index, function: { arguments: delta.partial_json } }] })];
    }
    // thinking_delta, signature_delta, citations_delta: not part of the OpenAI shape.
    return [];
  }

  private messageDelta(data: Record<string, unknown>): void {
    const delta = asObject(data.delta);
    if (typeof delta.stop_reason === 'string') this.finishReason = toFinishReason(delta.stop_reason);
    this.mergeUsage(data.usage);
  }

  private messageStop(): ChatCompletionChunk[] {
    this.finished = true;
    const finish = this.chunk({}, this.finishReason ?? 'stop');
    const usage: ChatCompletionChunk = { ...this.chunk({}), choices: [], usage: toUsage(this.usage) };
    return [finish, usage];
  }

  /** message_delta usage is cumulative: its fields replace message_start's. */
  private mergeUsage(u: unknown): void {
    if (typeof u !== 'object' || u === null) return;
    for (const [k, v] of Object.entries(u)) {
      if (typeof v === 'number') (this.usage as Record<string, number>)[k] = v;
    }
  }

  private chunk(delta: Delta, finishReason: FinishReason | null = null): ChatCompletionChunk {
    return {
      id: this.id,
      object: 'chat.completion.chunk',
      created: this.created,
      model: this.model,
      choices: [{ index: 0, delta, finish_reason: finishReason }],
    };
  }
}

function asObject(v: unknown): Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

function streamError(data: Record<string, unknown>): UpstreamError {
  const err = asObject(data.error);
  const type = typeof err.type === 'string' ? err.type : 'api_error';
  const raw = typeof err.message === 'string' && err.message !== '' ? err.message : type;
  const upstreamMessage = truncateMessage(raw);
  return new UpstreamError('http', `upstream error mid-stream: ${upstreamMessage}`, {
    status: type === 'overloaded_error' ? 529 : 500,
    phase: 'stream',
    upstreamMessage,
  });
}
