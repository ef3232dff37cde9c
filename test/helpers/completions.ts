/**
 * A non-streamed chat completion for unit tests: one choice holding `content`, finished by
 * `stop`, with usage; any top-level field can be replaced.
 */
import type { ChatCompletion } from '../../src/providers/types.js';

export function chatCompletion(content: string, over: Partial<ChatCompletion> = {}): ChatCompletion {
  return {
    id: 'chatcmpl-1',
    object: 'chat.completion',
    created: 0,
    model: 'm',
    choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
    usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 },
    ...over,
  };
}
