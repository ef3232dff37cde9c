/**
 * OpenAI Chat Completions request -> Anthropic Messages request. Pure.
 *
 * A request Anthropic cannot express (bad tool-call arguments, unsupported content, n > 1) is
 * rejected with an UpstreamError ('http', status 400) whose message names the offending field, so
 * it reaches the client like any upstream 4xx and is never retried.
 */
import { UpstreamError, type ChatCompletionRequest, type ChatMessage, type ContentPart } from '../types.js';
import type {
  AnthropicImageBlock,
  AnthropicMessageParam,
  AnthropicMessagesRequest,
  AnthropicRequestBlock,
  AnthropicTextBlock,
  AnthropicTool,
  AnthropicToolChoice,
} from './wire.js';

export interface TranslateRequestOptions {
  /** The upstream model name. */
  model: string;
  /** max_tokens when the request sets neither max_completion_tokens nor max_tokens. */
  defaultMaxTokens: number;
}

/** A 400 naming the field, shaped like an upstream rejection. */
export function invalidRequest(message: string): UpstreamError {
  return new UpstreamError('http', message, { status: 400, upstreamMessage: message });
}

const JSON_INSTRUCTION = 'Respond only with a single valid JSON object, with no text before or after it.';

export function toAnthropicRequest(req: ChatCompletionRequest, opts: TranslateRequestOptions): AnthropicMessagesRequest {
  if (typeof req.n === 'number' && req.n > 1) {
    throw invalidRequest('n: anthropic models return one choice; n must be 1');
  }
  const system: string[] = [];
  const messages: AnthropicMessageParam[] = [];

  req.messages.forEach((msg, i) => {
    const at = `messages[${i}]`;
    switch (msg.role) {
      case 'system':
      case 'developer': {
        const text = textOnly(msg.content, at);
        if (text !== '') system.push(text);
        return;
      }
      case 'user':
        push(messages, 'user', contentBlocks(msg.content, at));
        return;
      case 'assistant':
        push(messages, 'assistant', [...contentBlocks(msg.content, at), ...toolUseBlocks(msg, at)]);
        return;
      case 'tool': {
        if (typeof msg.tool_call_id !== 'string' || msg.tool_call_id === '') {
          throw invalidRequest(`${at}.tool_call_id is required for tool messages`);
        }
        const blocks = contentBlocks(msg.content, at);
        const content = blocks.every((b) => b.type === 'text')
          ? (blocks as AnthropicTextBlock[]).map((b) => b.text).join('')
          : (blocks as Array<AnthropicTextBlock | AnthropicImageBlock>);
        push(messages, 'user', [{ type: 'tool_result', tool_use_id: msg.tool_call_id, content }], true);
        return;
      }
      default:
        throw invalidRequest(`${at}.role: '${String(msg.role)}' is not supported by anthropic models`);
    }
  });

  const format = req.response_format;
  if (format && (format.type === 'json_object' || format.type === 'json_schema')) {
    const schema = format.type === 'json_schema' ? schemaOf(format.json_schema) : undefined;
    system.push(schema === undefined ? JSON_INSTRUCTION : `${JSON_INSTRUCTION} It must match this JSON schema: ${JSON.stringify(schema)}`);
  }

  const maxTokens = req.max_completion_tokens ?? req.max_tokens ?? opts.defaultMaxTokens;
  const out: AnthropicMessagesRequest = { model: opts.model, messages, max_tokens: maxTokens };
  if (system.length > 0) out.system = system.join('\n\n');
  // OpenAI's temperature goes to 2, Anthropic's to 1.
  if (typeof req.temperature === 'number') out.temperature = Math.min(1, Math.max(0, req.temperature));
  if (typeof req.top_p === 'number') out.top_p = req.top_p;
  if (typeof req.stop === 'string') out.stop_sequences = [req.stop];
  else if (Array.isArray(req.stop) && req.stop.length > 0) out.stop_sequences = [...req.stop];
  if (typeof req.user === 'string' && req.user !== '') out.metadata = { user_id: req.user };
  if (Array.isArray(req.tools) && req.tools.length > 0) {
    out.tools = req.tools.map((t, i): AnthropicTool => {
      if (!t || t.type !== 'function' || !t.function || typeof t.function.name !== 'string') {
        throw invalidRequest(`tools[${i}]: only function tools with a name are supported by anthropic models`);
      }
      const tool: AnthropicTool = {
        name: t.function.name,
        input_schema: t.function.parameters ?? { type: 'object', properties: {} },
      };
      if (t.function.description !== undefined) tool.description = t.function.description;
      return tool;
    });
  }
  const choice = toolChoice(req);
  if (choice !== undefined) out.tool_choice = choice;
  return out;
}

function toolChoice(req: ChatCompletionRequest): AnthropicToolChoice | undefined {
  // Anthropic rejects tool_choice without tools; OpenAI ignores it.
  if (!Array.isArray(req.tools) || req.tools.length === 0) return undefined;
  const tc = req.tool_choice;
  const noParallel = req.parallel_tool_calls === false;
  let choice: AnthropicToolChoice | undefined;
  if (tc === 'none') return { type: 'none' };
  if (tc === 'auto') choice = { type: 'auto' };
  else if (tc === 'required') choice = { type: 'any' };
  else if (tc && typeof tc === 'object' && tc.function && typeof tc.function.name === 'string') {
    choice = { type: 'tool', name: tc.function.name };
  } else if (tc !== undefined && tc !== null) {
    throw invalidRequest('tool_choice: expected none, auto, required or {type:"function",function:{name}}');
  }
  if (noParallel) {
    choice = { ...(choice ?? { type: 'auto' }), disable_parallel_tool_use: true } as AnthropicToolChoice;
  }
  return choice;
}

/** Appends blocks, merging with the previous message of the same role (Anthropic requires alternation). */
function push(messages: AnthropicMessageParam[], role: 'user' | 'assistant', blocks: AnthropicRequestBlock[], front = false): void {
  if (blocks.length === 0) return;
  const last = messages[messages.length - 1];
  if (last && last.role === role) {
    // tool_result blocks must lead a user turn: keep them ahead of any text merged before them.
    if (front) {
      const firstNonResult = last.content.findIndex((b) => b.type !== 'tool_result');
      if (firstNonResult !== -1) {
        last.content.splice(firstNonResult, 0, ...blocks);
        return;
      }
    }
    last.content.push(...blocks);
    return;
  }
  messages.push({ role, content: blocks });
}

function textOnly(content: ChatMessage['content'], at: string): string {
  if (content === null || content === undefined) return '';
  if (typeof content === 'string') return content;
  return content
    .map((part, j) => {
      if (part.type !== 'text' || typeof (part as { text?: unknown }).text !== 'string') {
        throw invalidRequest(`${at}.content[${j}]: only text parts are allowed here`);
      }
      return (part as { text: string }).text;
    })
    .join('\n');
}

function contentBlocks(content: ChatMessage['content'], at: string): Array<AnthropicTextBlock | AnthropicImageBlock> {
  if (content === null || content === undefined) return [];
  // Anthropic rejects empty text blocks.
  if (typeof content === 'string') return content === '' ? [] : [{ type: 'text', text: content }];
  if (!Array.isArray(content)) throw invalidRequest(`${at}.content: expected a string or an array of parts`);
  const blocks: Array<AnthropicTextBlock | AnthropicImageBlock> = [];
  content.forEach((part: ContentPart, j) => {
    const field = `${at}.content[${j}]`;
    if (part.type === 'text') {
      const text = (part as { text?: unknown }).text;
      if (typeof text !== 'string') throw invalidRequest(`${field}.text must be a string`);
      if (text !== '') blocks.push({ type: 'text', text });
    } else if (part.type === 'image_url') {
      const url = (part as { image_url?: { url?: unknown } }).image_url?.url;
      if (typeof url !== 'string') throw invalidRequest(`${field}.image_url.url must be a string`);
      blocks.push(imageBlock(url, `${field}.image_url.url`));
    } else {
      throw invalidRequest(`${field}.type: '${part.type}' content is not supported by anthropic models`);
    }
  });
  return blocks;
}

const DATA_URL = /^data:([^;,]+)((?:;[^;,]*)*?);base64,(.*)$/s;

function imageBlock(url: string, field: string): AnthropicImageBlock {
  if (url.startsWith('data:')) {
    const m = DATA_URL.exec(url);
    if (!m || !m[1] || m[3] === undefined) throw invalidRequest(`${field}: expected a base64 data: URL (data:image/png;base64,...)`);
    return { type: 'image', source: { type: 'base64', media_type: m[1], data: m[3] } };
  }
  if (/^https?:\/\//i.test(url)) return { type: 'image', source: { type: 'url', url } };
  throw invalidRequest(`${field}: expected an http(s) URL or a base64 data: URL`);
}

function toolUseBlocks(msg: ChatMessage, at: string): AnthropicRequestBlock[] {
  if (!Array.isArray(msg.tool_calls)) return [];
  return msg.tool_calls.map((call, k) => {
    const field = `${at}.tool_calls[${k}]`;
    const args = call.function?.arguments;
    let input: unknown = {};
    if (typeof args === 'string' && args.trim() !== '') {
      try {
        input = JSON.parse(args);
      } catch {
        throw invalidRequest(`${field}.function.arguments is not valid JSON`);
      }
    }
    if (typeof input !== 'object' || input === null || Array.isArray(input)) {
      throw invalidRequest(`${field}.function.arguments must be a JSON object`);
    }
    return { type: 'tool_use', id: call.id, name: call.function.name, input: input as Record<string, unknown> };
  });
}

function schemaOf(jsonSchema: unknown): unknown {
  if (jsonSchema && typeof jsonSchema === 'object' && 'schema' in jsonSchema) return (jsonSchema as { schema: unknown }).schema;
  return undefined;
}
