/**
 * A cached answer: the completion a client got, and what it cost. Streams are assembled into a
 * completion before they are stored, and a completion is replayed as a valid SSE stream to a
 * client that asks to stream, so either kind of request can be answered from either kind.
 */
import type { ChatCompletion, ChatCompletionChunk, ChatCompletionChoice, ChunkToolCallDelta, Usage } from '../providers/types.js';

export interface CachedAnswer {
  v: 1;
  /** The completion as first served (usage included). */
  body: ChatCompletion;
  /** The public model that answered, and the deployment. */
  model: string;
  deployment: string;
  usage: Usage;
  /** Epoch ms. */
  createdAt: number;
  /** The semantic entry stored with it (so a bad verdict on an exact hit removes both). */
  semanticId?: string;
}

export function serializeAnswer(a: CachedAnswer): string {
  return JSON.stringify(a);
}

/** The answer, or undefined when the text is not one (a corrupt or foreign entry is a miss, never an error). */
export function parseAnswer(text: string): CachedAnswer | undefined {
  try {
    const a = JSON.parse(text) as Partial<CachedAnswer>;
    if (a.v !== 1 || !a.body || !Array.isArray(a.body.choices) || !a.usage) return undefined;
    return a as CachedAnswer;
  } catch {
    return undefined;
  }
}

/** Whether an answer is worth keeping: complete, with content or tool calls in every choice. */
export function isCacheable(body: ChatCompletion): boolean {
  if (body.choices.length === 0) return false;
  return body.choices.every(
    (c) =>
      (c.finish_reason === 'stop' || c.finish_reason === 'length' || c.finish_reason === 'tool_calls') &&
      ((c.message.content ?? '') !== '' || (c.message.tool_calls?.length ?? 0) > 0),
  );
}

/** Builds a completion from the chunks of a stream, in order. */
export class StreamAssembler {
  private id = '';
  private created = 0;
  private model = '';
  private fingerprint: string | null | undefined;
  private usage: Usage | undefined;
  private readonly choices = new Map<number, { content: string; refusal: string; tools: Map<number, { id: string; name: string; args: string }>; finish: ChatCompletionChoice['finish_reason'] }>();

  add(chunk: ChatCompletionChunk): void {
    this.id ||= chunk.id;
    this.created ||= chunk.created;
    this.model ||= chunk.model;
    if (chunk.system_fingerprint !== undefined) this.fingerprint = chunk.system_fingerprint;
    if (chunk.usage) this.usage = chunk.usage;
    for (const c of chunk.choices) {
      let acc = this.choices.get(c.index);
      if (!acc) {
        acc = { content: '', refusal: '', tools: new Map(), finish: null };
        this.choices.set(c.index, acc);
      }
      if (c.delta.content) acc.content += c.delta.content;
      if (c.delta.refusal) acc.refusal += c.delta.refusal;
      for (const t of c.delta.tool_calls ?? []) this.addTool(acc.tools, t);
      if (c.finish_reason) acc.finish = c.finish_reason;
    }
  }

  private addTool(tools: Map<number, { id: string; name: string; args: string }>, t: ChunkToolCallDelta): void {
    let acc = tools.get(t.index);
    if (!acc) {
      acc = { id: '', name: '', args: '' };
      tools.set(t.index, acc);
    }
    if (t.id) acc.id = t.id;
    if (t.function?.name) acc.name += t.function.name;
    if (t.function?.arguments) acc.args += t.function.arguments;
  }

  result(): ChatCompletion {
    const choices: ChatCompletionChoice[] = [...this.choices.entries()]
      .sort(([a], [b]) => a - b)
      .map(([index, c]) => {
        const message: ChatCompletionChoice['message'] = { role: 'assistant', content: c.content === '' && c.tools.size > 0 ? null : c.content };
        if (c.refusal) message.refusal = c.refusal;
        if (c.tools.size > 0) {
          message.tool_calls = [...c.tools.entries()].sort(([a], [b]) => a - b).map(([, t]) => ({ id: t.id, type: 'function' as const, function: { name: t.name, arguments: t.args } }));
        }
        return { index, message, finish_reason: c.finish, logprobs: null };
      });
    const body: ChatCompletion = { id: this.id, object: 'chat.completion', created: this.created, model: this.model, choices };
    if (this.usage) body.usage = this.usage;
    if (this.fingerprint !== undefined) body.system_fingerprint = this.fingerprint;
    return body;
  }
}

/** Characters per content chunk when a cached answer is replayed as a stream. */
const REPLAY_CHUNK_CHARS = 64;

/**
 * A completion as the chunks of a stream: a role chunk, the content in pieces, the finish chunk
 * per choice, and (when `includeUsage`) a last chunk with the usage and no choices, as OpenAI sends.
 */
export function replayChunks(body: ChatCompletion, includeUsage: boolean): ChatCompletionChunk[] {
  const base = { id: body.id, object: 'chat.completion.chunk' as const, created: body.created, model: body.model, ...(body.system_fingerprint !== undefined ? { system_fingerprint: body.system_fingerprint } : {}) };
  const chunks: ChatCompletionChunk[] = [];
  for (const choice of body.choices) {
    const index = choice.index;
    chunks.push({ ...base, choices: [{ index, delta: { role: 'assistant', content: '' }, finish_reason: null }] });
    const content = choice.message.content ?? '';
    for (let i = 0; i < content.length; ) {
      let end = Math.min(content.length, i + REPLAY_CHUNK_CHARS);
      const last = content.charCodeAt(end - 1);
      if (end < content.length && last >= 0xd800 && last <= 0xdbff) end++; // never split a surrogate pair
      chunks.push({ ...base, choices: [{ index, delta: { content: content.slice(i, end) }, finish_reason: null }] });
      i = end;
    }
    (choice.message.tool_calls ?? []).forEach((t, i) => {
      chunks.push({ ...base, choices: [{ index, delta: { tool_calls: [{ index: i, id: t.id, type: 'function', function: { name: t.function.name, arguments: t.function.arguments } }] }, finish_reason: null }] });
    });
    chunks.push({ ...base, choices: [{ index, delta: {}, finish_reason: choice.finish_reason }] });
  }
  if (includeUsage && body.usage) chunks.push({ ...base, choices: [], usage: body.usage });
  return chunks;
}
