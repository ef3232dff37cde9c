/**
 * The features of a chat request that the complexity classifier (classifier.ts) and the route's
 * rules (rules.ts) look at. On the request path before every routed call, so it must cost a few
 * microseconds: no tokenizer, no allocation beyond a few substrings, a handful of precompiled
 * regexes run over a bounded window of the text.
 *
 * What is scanned:
 *  - Every message once, for its length (string content, or the text parts of an array content;
 *    an `image_url` / `input_image` part sets `hasImages`; tool-call arguments count as text) and
 *    for a code fence (```), which anywhere in the conversation means code is in play.
 *  - The last user message (what is being asked now), with the regexes below. Long messages are
 *    scanned in a window: the first {@link HEAD_CHARS} and the last {@link TAIL_CHARS}
 *    characters (the ask is almost always at the start or the end of a long paste; the middle is
 *    the pasted material), so the cost is bounded whatever the size of the prompt.
 *  - The first system message's first {@link SYSTEM_CHARS} characters, for structure only
 *    ("answer in JSON" is often in the system prompt; "think step by step" in a system prompt
 *    applies to every request and says nothing about this one).
 *
 * The heuristics are deliberately broad, English-first, with the commonest French, Spanish,
 * German and Portuguese forms; each regex is documented where it is defined (feature-patterns.ts).
 * They over-fire more often than they miss: the classifier weighs them, and a false "hasCode" on
 * a one-line question costs at most one tier.
 *
 * Cost (bench/scenarios/routing.ts): ~3.5 µs mean over the labelled prompts; the regexes cost
 * ~11 ns per character scanned, so at most ~25 µs for the 2,000-character window; the rest is a
 * length and a fence search (`includes`, fast) per message: ~20 µs in all for a 256 KB prompt.
 */
import type { ChatCompletionRequest, ChatMessage } from '../providers/types.js';
import { CODE_ASK_RE, CODE_RE, MATH_RE, REASONING_RE, STRUCTURE_RE } from './feature-patterns.js';
import type { FeatureExtractor, RequestFeatures } from './types.js';

/** The part of a long last user message scanned from its start. */
export const HEAD_CHARS = 1500;
/** ... and from its end. */
export const TAIL_CHARS = 500;
/** The part of the system prompt scanned (for structure). */
export const SYSTEM_CHARS = 1000;

const FENCE = '```';

/** Whether `re` matches `text`, scanning only its head and tail when it is long. */
function scan(re: RegExp, text: string): boolean {
  if (text.length <= HEAD_CHARS + TAIL_CHARS) return re.test(text);
  return re.test(text.slice(0, HEAD_CHARS)) || re.test(text.slice(text.length - TAIL_CHARS));
}

/** A content part that is an image (OpenAI `image_url`, Responses-style `input_image`, `image`). */
function isImagePart(type: unknown): boolean {
  return type === 'image_url' || type === 'input_image' || type === 'image';
}

/** The text of an array content (text parts only, joined by newlines). */
function partsText(parts: readonly unknown[]): string {
  let text = '';
  for (const p of parts) {
    const part = p as { type?: unknown; text?: unknown };
    if (part && part.type === 'text' && typeof part.text === 'string') text = text === '' ? part.text : `${text}\n${part.text}`;
  }
  return text;
}

function maxTokensOf(body: ChatCompletionRequest): number | null {
  const a = body.max_completion_tokens;
  if (typeof a === 'number' && Number.isFinite(a)) return a;
  const b = body.max_tokens;
  if (typeof b === 'number' && Number.isFinite(b)) return b;
  return null;
}

/** Computes the {@link RequestFeatures} of a chat request (a few µs; no I/O, no tokenizer). */
export const extractFeatures: FeatureExtractor = (body: ChatCompletionRequest): RequestFeatures => {
  const messages: readonly ChatMessage[] = Array.isArray(body.messages) ? body.messages : [];
  let chars = 0;
  let userTurns = 0;
  let hasSystem = false;
  let fence = false;
  let hasImages = false;
  let lastUser = -1;
  let systemIdx = -1;

  for (let i = 0; i < messages.length; i++) {
    const m = messages[i] as ChatMessage;
    const role = m.role;
    if (role === 'user') {
      userTurns++;
      lastUser = i;
    } else if (role === 'system' || role === 'developer') {
      hasSystem = true;
      if (systemIdx === -1) systemIdx = i;
    }
    const content = m.content;
    if (typeof content === 'string') {
      chars += content.length;
      if (!fence && content.includes(FENCE)) fence = true;
    } else if (Array.isArray(content)) {
      for (const p of content) {
        const part = p as { type?: unknown; text?: unknown };
        if (!part) continue;
        if (part.type === 'text' && typeof part.text === 'string') {
          chars += part.text.length;
          if (!fence && part.text.includes(FENCE)) fence = true;
        } else if (isImagePart(part.type)) hasImages = true;
      }
    }
    const calls = m.tool_calls;
    if (Array.isArray(calls)) {
      for (const c of calls) {
        const f = c?.function;
        if (f) chars += (typeof f.name === 'string' ? f.name.length : 0) + (typeof f.arguments === 'string' ? f.arguments.length : 0);
      }
    }
  }

  let ask = '';
  if (lastUser !== -1) {
    const c = (messages[lastUser] as ChatMessage).content;
    ask = typeof c === 'string' ? c : Array.isArray(c) ? partsText(c) : '';
  }

  const rf = body.response_format;
  const jsonMode = rf != null && (rf.type === 'json_object' || rf.type === 'json_schema');

  let asksStructure = jsonMode || (ask !== '' && scan(STRUCTURE_RE, ask));
  if (!asksStructure && systemIdx !== -1) {
    const c = (messages[systemIdx] as ChatMessage).content;
    const sys = typeof c === 'string' ? c : Array.isArray(c) ? partsText(c) : '';
    if (sys !== '') asksStructure = STRUCTURE_RE.test(sys.length > SYSTEM_CHARS ? sys.slice(0, SYSTEM_CHARS) : sys);
  }

  const tools = body.tools;
  const functions = (body as { functions?: unknown }).functions;

  return {
    promptChars: chars,
    promptTokens: Math.ceil(chars / 4),
    lastUserChars: ask.length,
    messages: messages.length,
    userTurns,
    hasSystem,
    hasCode: fence || (ask !== '' && (scan(CODE_RE, ask) || scan(CODE_ASK_RE, ask))),
    hasMath: ask !== '' && scan(MATH_RE, ask),
    asksReasoning: ask !== '' && scan(REASONING_RE, ask),
    asksStructure,
    hasTools: (Array.isArray(tools) && tools.length > 0) || (Array.isArray(functions) && functions.length > 0),
    jsonMode,
    maxTokens: maxTokensOf(body),
    hasImages,
  };
};
