/**
 * Anthropic Messages response -> OpenAI chat completion. Pure.
 */
import type { ChatCompletion, FinishReason, ToolCall, Usage } from '../types.js';
import type { AnthropicMessage, AnthropicStopReason, AnthropicToolUseBlock, AnthropicUsage } from './wire.js';

/** Anthropic's stop_reason as an OpenAI finish_reason. */
export function toFinishReason(stop: AnthropicStopReason | null | undefined): FinishReason {
  switch (stop) {
    case 'max_tokens':
      return 'length';
    case 'tool_use':
      return 'tool_calls';
    case 'refusal':
      return 'content_filter';
    default:
      // end_turn, stop_sequence, pause_turn and anything newer end the turn normally.
      return 'stop';
  }
}

const n = (v: number | null | undefined): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);

/**
 * Anthropic usage as OpenAI usage. Anthropic's input_tokens excludes cached input, so the prompt
 * total adds cache reads and cache writes back; cache reads are reported as cached_tokens.
 */
export function toUsage(u: AnthropicUsage | null | undefined): Usage {
  const cacheRead = n(u?.cache_read_input_tokens);
  const prompt = n(u?.input_tokens) + cacheRead + n(u?.cache_creation_input_tokens);
  const completion = n(u?.output_tokens);
  return {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: prompt + completion,
    prompt_tokens_details: { cached_tokens: cacheRead },
  };
}

export function isAnthropicMessage(v: unknown): v is AnthropicMessage {
  return (
    typeof v === 'object' &&
    v !== null &&
    (v as { type?: unknown }).type === 'message' &&
    Array.isArray((v as { content?: unknown }).content)
  );
}

export function fromAnthropicMessage(msg: AnthropicMessage, created: number = Math.floor(Date.now() / 1000)): ChatCompletion {
  let text = '';
  let hasText = false;
  const toolCalls: ToolCall[] = [];
  for (const block of msg.content) {
    if (block.type === 'text' && typeof block.text === 'string') {
      text += block.text;
      hasText = true;
    } else if (block.type === 'tool_use') {
      const b = block as AnthropicToolUseBlock;
      toolCalls.push({ id: b.id, type: 'function', function: { name: b.name, arguments: JSON.stringify(b.input ?? {}) } });
    }
    // thinking, redacted_thinking, server tool blocks...: not part of the OpenAI shape.
  }
  const message: ChatCompletion['choices'][number]['message'] = {
    role: 'assistant',
    // OpenAI answers content: null for a pure tool call.
    content: hasText || toolCalls.length === 0 ? text : null,
  };
  if (toolCalls.length > 0) message.tool_calls = toolCalls;
  return {
    id: msg.id,
    object: 'chat.completion',
    created,
    model: msg.model,
    choices: [{ index: 0, message, finish_reason: toFinishReason(msg.stop_reason), logprobs: null }],
    usage: toUsage(msg.usage),
  };
}
