/**
 * Simulated chat completions: request validation, the deterministic answer plan (text, JSON or a
 * tool call per choice, with usage) and its rendering as an OpenAI completion or as chunks.
 */
import type { SimModelConfig } from '../../config/schema.js';
import type {
  ChatCompletion,
  ChatCompletionChunk,
  ChatCompletionRequest,
  ChatMessage,
  FinishReason,
  ToolCall,
  ToolDefinition,
  Usage,
} from '../types.js';
import { SimError } from './outcomes.js';
import { randomHex, randomInt, seededRandom } from './random.js';
import { conversationText, countPromptTokens, countTextTokens, generateWords, lastUserText, toolArguments } from './text.js';

/** One choice of a planned answer. */
export interface ChoicePlan {
  index: number;
  /** Streamed content pieces: one per completion token (empty for a tool call). */
  pieces: string[];
  toolCall?: ToolCall;
  /** Streamed pieces of the tool call's arguments. */
  argumentPieces: string[];
  finishReason: FinishReason;
  completionTokens: number;
}

/**
 * A scripted answer: a request whose last user message matches `match` (a regular expression, or
 * a case-insensitive substring) is answered `answer` whatever the rest of its wording, so a class
 * of questions (paraphrases) gets one answer (tests of answer equivalence). First match wins.
 */
export interface ScriptedAnswer {
  match: RegExp | string;
  answer: string;
}

/** The scripted answer for `said`, if a rule matches. */
export function scriptedAnswer(rules: readonly ScriptedAnswer[], said: string): string | undefined {
  const lower = said.toLowerCase();
  for (const r of rules) {
    if (typeof r.match === 'string' ? lower.includes(r.match.toLowerCase()) : r.match.test(said)) return r.answer;
  }
  return undefined;
}

/** A fully decided answer, before latency and faults are applied. */
export interface ChatPlan {
  id: string;
  created: number;
  model: string;
  choices: ChoicePlan[];
  usage: Usage;
}

/** One chunk of a stream; `paced` chunks wait 1/tokensPerSecond before they are sent. */
export interface StreamStep {
  chunk: ChatCompletionChunk;
  paced: boolean;
}

const SYSTEM_FINGERPRINT = 'fp_tollgate_sim';
const ARGUMENT_PIECE_CHARS = 12;

function optionalPositiveInt(body: Record<string, unknown>, field: string, max = Number.MAX_SAFE_INTEGER): number | undefined {
  const v = body[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max) {
    throw new SimError(400, `Invalid '${field}': expected an integer between 1 and ${max}.`, {
      param: field,
      code: 'invalid_value',
    });
  }
  return v;
}

/** Checks the parts of a chat request the simulator relies on; throws a 400 SimError otherwise. */
export function validateChatRequest(body: unknown): asserts body is ChatCompletionRequest {
  if (!body || typeof body !== 'object' || Array.isArray(body)) {
    throw new SimError(400, 'The request body must be a JSON object.', { code: 'invalid_request' });
  }
  const b = body as Record<string, unknown>;
  if (typeof b.model !== 'string' || b.model === '') {
    throw new SimError(400, "Missing required parameter: 'model'.", { param: 'model', code: 'missing_required_parameter' });
  }
  if (!Array.isArray(b.messages) || b.messages.length === 0) {
    throw new SimError(400, "'messages' must be a non-empty array.", { param: 'messages', code: 'invalid_value' });
  }
  b.messages.forEach((m: unknown, i) => {
    if (!m || typeof m !== 'object' || typeof (m as { role?: unknown }).role !== 'string') {
      throw new SimError(400, `Invalid 'messages[${i}]': expected an object with a 'role'.`, {
        param: `messages[${i}]`,
        code: 'invalid_value',
      });
    }
  });
  optionalPositiveInt(b, 'max_tokens');
  optionalPositiveInt(b, 'max_completion_tokens');
  optionalPositiveInt(b, 'n', 128);
  if (b.tools !== undefined && b.tools !== null && !Array.isArray(b.tools)) {
    throw new SimError(400, "'tools' must be an array.", { param: 'tools', code: 'invalid_type' });
  }
}

function chosenTool(req: ChatCompletionRequest): ToolDefinition | undefined {
  const tools = (req.tools ?? []).filter((t) => t && t.function && typeof t.function.name === 'string');
  if (tools.length === 0) return undefined;
  const choice = req.tool_choice ?? 'auto';
  if (choice === 'none') return undefined;
  if (typeof choice === 'object') {
    const name = choice.function?.name ?? '';
    return tools.find((t) => t.function.name === name) ?? { type: 'function', function: { name } };
  }
  const said = lastUserText(req.messages);
  if (choice !== 'required' && !/\btools?\b/i.test(said)) return undefined;
  const lower = said.toLowerCase();
  return tools.find((t) => lower.includes(t.function.name.toLowerCase())) ?? tools[0];
}

function splitEvery(text: string, size: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size));
  return out.length > 0 ? out : [''];
}

function planChoice(req: ChatCompletionRequest, model: SimModelConfig, index: number, text: string, scripted?: string): ChoicePlan {
  const random = seededRandom(req.model, req.seed ?? null, text, index);
  if (scripted !== undefined) {
    const words = scripted.split(/(?<=\S)(?=\s)/); // pieces keep their leading space, like generated ones
    return { index, pieces: words.length > 0 ? words : [''], argumentPieces: [], finishReason: 'stop', completionTokens: Math.max(1, countTextTokens(scripted)) };
  }
  const tool = chosenTool(req);
  if (tool) {
    const name = tool.function.name;
    const args = toolArguments(random, tool);
    return {
      index,
      pieces: [],
      toolCall: { id: `call_sim_${randomHex(random, 20)}`, type: 'function', function: { name, arguments: args } },
      argumentPieces: splitEvery(args, ARGUMENT_PIECE_CHARS),
      finishReason: 'tool_calls',
      completionTokens: countTextTokens(name) + countTextTokens(args),
    };
  }
  let count = Math.max(1, randomInt(random, model.outputTokens.min, model.outputTokens.max));
  const limit = req.max_completion_tokens ?? req.max_tokens;
  let finishReason: FinishReason = 'stop';
  if (typeof limit === 'number' && count > limit) {
    count = limit;
    finishReason = 'length';
  }
  const words = generateWords(random, count);
  const json = req.response_format?.type === 'json_object' || req.response_format?.type === 'json_schema';
  const pieces = words.map((w, i) => (i === 0 ? w : ` ${w}`));
  if (json) {
    pieces[0] = `{"answer":"${pieces[0] ?? ''}`;
    // A clipped answer stays clipped, as upstream would leave it: not valid JSON.
    if (finishReason === 'stop') pieces[pieces.length - 1] += '"}';
  }
  return { index, pieces, argumentPieces: [], finishReason, completionTokens: count };
}

/** Decides the whole answer. Same model + seed + messages + options: same answer. */
export function planChat(req: ChatCompletionRequest, model: SimModelConfig, id: string, created: number, answers: readonly ScriptedAnswer[] = []): ChatPlan {
  const text = conversationText(req.messages as ChatMessage[]);
  const n = req.n ?? 1;
  const scripted = answers.length > 0 ? scriptedAnswer(answers, lastUserText(req.messages)) : undefined;
  const choices: ChoicePlan[] = [];
  for (let i = 0; i < n; i++) choices.push(planChoice(req, model, i, text, scripted));
  const promptTokens = countPromptTokens(req.messages, req.tools);
  const completionTokens = choices.reduce((sum, c) => sum + c.completionTokens, 0);
  return {
    id,
    created,
    model: req.model,
    choices,
    usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens },
  };
}

/** The non-streaming answer. */
export function toCompletion(plan: ChatPlan): ChatCompletion {
  return {
    id: plan.id,
    object: 'chat.completion',
    created: plan.created,
    model: plan.model,
    choices: plan.choices.map((c) => ({
      index: c.index,
      message: c.toolCall
        ? { role: 'assistant', content: null, tool_calls: [c.toolCall], refusal: null }
        : { role: 'assistant', content: c.pieces.join(''), refusal: null },
      logprobs: null,
      finish_reason: c.finishReason,
    })),
    usage: { ...plan.usage },
    system_fingerprint: SYSTEM_FINGERPRINT,
  };
}

/** The number of paced steps of the longest choice: how long generation takes, in tokens. */
export function generationSteps(plan: ChatPlan): number {
  return plan.choices.reduce((max, c) => Math.max(max, c.toolCall ? c.argumentPieces.length : c.pieces.length), 0);
}

/**
 * The streamed answer, as OpenAI sends it: per choice a role chunk, then content (or tool-call)
 * chunks, choices interleaved; then a finish chunk per choice. With `includeUsage`, every chunk
 * carries `usage: null` and a last chunk with no choices carries the usage.
 */
export function toStreamSteps(plan: ChatPlan, includeUsage: boolean): StreamStep[] {
  const steps: StreamStep[] = [];
  const make = (choice: ChatCompletionChunk['choices'][number] | undefined, paced: boolean): void => {
    const chunk: ChatCompletionChunk = {
      id: plan.id,
      object: 'chat.completion.chunk',
      created: plan.created,
      model: plan.model,
      system_fingerprint: SYSTEM_FINGERPRINT,
      choices: choice ? [choice] : [],
    };
    if (includeUsage) chunk.usage = choice ? null : { ...plan.usage };
    steps.push({ chunk, paced });
  };
  for (const c of plan.choices) {
    make({ index: c.index, delta: { role: 'assistant', content: c.toolCall ? null : '', refusal: null }, logprobs: null, finish_reason: null }, false);
    if (c.toolCall) {
      const header = { index: 0, id: c.toolCall.id, type: 'function' as const, function: { name: c.toolCall.function.name, arguments: '' } };
      make({ index: c.index, delta: { tool_calls: [header] }, logprobs: null, finish_reason: null }, false);
    }
  }
  const rounds = generationSteps(plan);
  for (let k = 0; k < rounds; k++) {
    let first = true;
    for (const c of plan.choices) {
      const piece = c.toolCall ? c.argumentPieces[k] : c.pieces[k];
      if (piece === undefined) continue;
      const delta = c.toolCall ? { tool_calls: [{ index: 0, function: { arguments: piece } }] } : { content: piece };
      make({ index: c.index, delta, logprobs: null, finish_reason: null }, k > 0 && first);
      first = false;
    }
  }
  for (const c of plan.choices) make({ index: c.index, delta: {}, logprobs: null, finish_reason: c.finishReason }, false);
  if (includeUsage) make(undefined, false);
  return steps;
}

/**
 * Serialises a plan's chunks as SSE events, byte for byte what `data: ${JSON.stringify(chunk)}`
 * gives, at half the cost: the fields every chunk shares are encoded once. (The HTTP server's
 * streams are the benchmarks' upstream, so this is hot.)
 */
export function sseSerializer(plan: ChatPlan, includeUsage: boolean): (chunk: ChatCompletionChunk) => string {
  const head =
    `data: {"id":${JSON.stringify(plan.id)},"object":"chat.completion.chunk","created":${plan.created},` +
    `"model":${JSON.stringify(plan.model)},"system_fingerprint":${JSON.stringify(SYSTEM_FINGERPRINT)},"choices":`;
  const tail = includeUsage ? ',"usage":null}\n\n' : '}\n\n';
  return (chunk) =>
    chunk.usage
      ? `${head}${JSON.stringify(chunk.choices)},"usage":${JSON.stringify(chunk.usage)}}\n\n`
      : head + JSON.stringify(chunk.choices) + tail;
}
