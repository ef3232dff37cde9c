/**
 * The simulator's text: generated answers (one word = one completion token), prompt token
 * counting with the real o200k tokenizer, and made-up tool-call arguments.
 */
import { countText, loadTokenizer } from '../../metering/tokenizer.js';
import type { ChatMessage, ToolDefinition } from '../types.js';
import { randomInt } from './random.js';

const VOCABULARY = (
  'the a an this that our your their system request answer model gateway cache token budget ' +
  'latency stream provider user tenant cost route fallback result data value time service ' +
  'question example response record process number policy limit error signal metric queue ' +
  'is are was can will should may must does often usually rarely always never quickly ' +
  'returns handles keeps sends reads writes checks builds runs serves stores measures routes ' +
  'caches limits counts retries explains suggests shows helps makes takes gives finds uses ' +
  'simple fast slow cheap reliable careful clear small large new old next first last best ' +
  'common useful likely stable recent local remote shared single every each other more less ' +
  'and or but so because when while if then also still only just even already instead ' +
  'with for from into over under after before between through about within without across ' +
  'we you it they people teams engineers customers clients developers operators readers'
).split(' ');

/**
 * `count` words of sentence-ish text (capitalised starts, commas, full stops). Punctuation sticks to
 * its word, so splitting the joined text on whitespace gives back exactly `count` words. Words
 * contain no quotes or backslashes, so they embed in a JSON string as they are.
 */
export function generateWords(random: () => number, count: number): string[] {
  const words: string[] = [];
  let sentenceLeft = 0;
  for (let i = 0; i < count; i++) {
    let word = VOCABULARY[Math.floor(random() * VOCABULARY.length)] ?? 'token';
    if (sentenceLeft === 0) {
      sentenceLeft = randomInt(random, 6, 14);
      word = word.charAt(0).toUpperCase() + word.slice(1);
    }
    sentenceLeft--;
    if (sentenceLeft === 0 || i === count - 1) word += '.';
    else if (sentenceLeft > 2 && random() < 0.08) word += ',';
    words.push(word);
  }
  return words;
}

/** The text of a message's content (text parts joined; other parts ignored). */
export function contentText(content: ChatMessage['content'] | undefined): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  let out = '';
  for (const part of content) {
    if (part && part.type === 'text' && typeof (part as { text?: unknown }).text === 'string') {
      out += (out ? '\n' : '') + (part as { text: string }).text;
    }
  }
  return out;
}

/** All the text of a conversation, in order (used to seed the answer). */
export function conversationText(messages: readonly ChatMessage[]): string {
  return messages.map((m) => `${m.role}:${contentText(m.content)}`).join('\n');
}

/** The text of the last user message ('' when there is none). */
export function lastUserText(messages: readonly ChatMessage[]): string {
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i];
    if (m && m.role === 'user') return contentText(m.content);
  }
  return '';
}

// Loaded with the simulator's module: its counts are synchronous.
await loadTokenizer();

/**
 * Characters of one request the simulator counts with the tokenizer; past them one token per
 * UTF-8 byte (src/metering/tokenizer.ts). The simulator runs in the gateway's process in the
 * zero-config setup, so its synchronous counting is kept to a few milliseconds per request.
 */
export const SIM_EXACT_CHARS = 16_384;

/** Tokens of a plain text with the o200k encoding (bounded work: src/metering/tokenizer.ts). */
export function countTextTokens(text: string, exactChars = SIM_EXACT_CHARS): number {
  return text ? countText(text, exactChars) : 0;
}

/** Tokens an image part costs (OpenAI's low-detail price; the simulator does not look at images). */
const IMAGE_PART_TOKENS = 85;

/**
 * Prompt tokens of a chat request as OpenAI counts them: the text of every message (and its
 * name and tool calls), 3 tokens of overhead per message and 3 for the assistant's reply primer.
 * Tool definitions, when given, count as their JSON text.
 */
export function countPromptTokens(messages: readonly ChatMessage[], tools?: readonly ToolDefinition[]): number {
  // One budget of exact counting for the whole request (each text its own would multiply it).
  let left = SIM_EXACT_CHARS;
  const count = (text: string) => {
    const n = countTextTokens(text, Math.max(0, left));
    left -= text.length;
    return n;
  };
  let total = 3;
  for (const m of messages) {
    total += 3 + count(contentText(m.content));
    if (Array.isArray(m.content)) {
      for (const part of m.content) if (part && part.type === 'image_url') total += IMAGE_PART_TOKENS;
    }
    if (typeof m.name === 'string' && m.name) total += 1 + count(m.name);
    if (Array.isArray(m.tool_calls)) {
      for (const call of m.tool_calls) {
        total += count(call.function?.name ?? '') + count(call.function?.arguments ?? '');
      }
    }
  }
  if (tools && tools.length > 0) total += count(JSON.stringify(tools));
  return total;
}

/** Made-up but schema-shaped arguments for a function, as a JSON string. */
export function toolArguments(random: () => number, tool: ToolDefinition | undefined): string {
  const params = tool?.function.parameters as { properties?: Record<string, unknown> } | undefined;
  const props = params && typeof params.properties === 'object' && params.properties ? params.properties : {};
  const args: Record<string, unknown> = {};
  for (const [key, schema] of Object.entries(props)) args[key] = valueFor(random, schema);
  return JSON.stringify(args);
}

function valueFor(random: () => number, schema: unknown): unknown {
  const s = (schema && typeof schema === 'object' ? schema : {}) as { type?: unknown; enum?: unknown };
  if (Array.isArray(s.enum) && s.enum.length > 0) return s.enum[Math.floor(random() * s.enum.length)];
  const type = Array.isArray(s.type) ? s.type[0] : s.type;
  switch (type) {
    case 'integer':
      return randomInt(random, 1, 100);
    case 'number':
      return Math.round(random() * 10000) / 100;
    case 'boolean':
      return random() < 0.5;
    case 'array':
      return [generateWords(random, 1)[0]?.replace(/[.,]$/, '').toLowerCase()];
    case 'object':
      return {};
    default:
      return generateWords(random, 2).join(' ').replace(/[.,]/g, '').toLowerCase();
  }
}
