/**
 * Token counts for when upstream reports no usage (a server that ignores include_usage, a stream
 * cut short by a client disconnect). Uses gpt-tokenizer's o200k_base; for other model families
 * the count is an estimate, which is why upstream usage always wins when present.
 */
import type { ChatMessage, EmbeddingRequest, Usage } from '../providers/types.js';

type CountTokens = (text: string) => number;
let counter: CountTokens | undefined;
let loading: Promise<CountTokens> | undefined;

/**
 * Loads the encoder (~0.5 s and some MB the first time), so processes that never need a local
 * count (CLI commands, gateways whose upstreams always report usage) never pay for it.
 */
export function loadTokenizer(): Promise<CountTokens> {
  loading ??= import('gpt-tokenizer').then((m) => (counter = m.countTokens));
  return loading;
}

/** OpenAI's chat format overhead: ~3 tokens per message plus 3 to prime the answer. */
const PER_MESSAGE = 3;
const PRIMING = 3;

/** Counts tokens; the tokenizer must be loaded ({@link loadTokenizer}). */
export function countText(text: string): number {
  if (text === '') return 0;
  if (!counter) throw new Error('tokenizer not loaded: await loadTokenizer() first');
  return counter(text);
}

function messageText(m: ChatMessage): string {
  let text = '';
  if (typeof m.content === 'string') text = m.content;
  else if (Array.isArray(m.content)) {
    for (const part of m.content) if (part.type === 'text' && typeof part.text === 'string') text += part.text;
  }
  if (m.tool_calls) for (const c of m.tool_calls) text += c.function.name + c.function.arguments;
  return text;
}

export function countPromptTokens(messages: readonly ChatMessage[]): number {
  let n = PRIMING;
  for (const m of messages) n += PER_MESSAGE + countText(messageText(m)) + (m.name ? 1 : 0);
  return n;
}

export function countEmbeddingInput(input: EmbeddingRequest['input']): number {
  if (typeof input === 'string') return countText(input);
  let n = 0;
  for (const item of input) n += typeof item === 'string' ? countText(item) : Array.isArray(item) ? item.length : 1;
  return n;
}

/** Usage counted locally for a chat exchange. */
export async function estimateUsage(messages: readonly ChatMessage[], completionText: string): Promise<Usage> {
  await loadTokenizer();
  const prompt = countPromptTokens(messages);
  const completion = countText(completionText);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}
