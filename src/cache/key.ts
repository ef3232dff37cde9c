/**
 * What a chat request is, for the cache: whether it may be cached, its exact key, and its
 * semantic scope and question.
 *
 * Exact key: `<tenant>/<route>/<sha256>` over the normalized messages and every parameter that
 * changes the output. Parameters are excluded only when they are known not to change it (stream,
 * stream_options, user, metadata, store, service_tier...): an unknown parameter is part of the key,
 * so a new upstream feature never makes two different requests share an answer.
 *
 * Semantic scope: the same hash without the last user message, plus the embedder's id: two
 * requests may share an answer by meaning only when their tenant, route, system prompt, earlier
 * conversation and parameters are identical, and their last user messages are close.
 */
import { createHash } from 'node:crypto';
import type { CacheMode } from '../config/cache-schema.js';
import type { ChatCompletionRequest, ChatMessage } from '../providers/types.js';

/** Request fields that never change the answer (transport, attribution, billing). */
const IRRELEVANT = new Set(['model', 'messages', 'stream', 'stream_options', 'user', 'metadata', 'store', 'service_tier', 'safety_identifier', 'prompt_cache_key']);

/** What the client asked with `x-tollgate-cache`. */
export type CacheDirective = 'default' | 'force' | 'skip' | 'refresh';

export function parseDirective(header: string | string[] | undefined): CacheDirective | undefined {
  const v = (Array.isArray(header) ? header[0] : header)?.trim().toLowerCase();
  if (v === undefined || v === '') return 'default';
  return v === 'force' || v === 'skip' || v === 'refresh' ? v : undefined;
}

/** Output reproducible enough to serve again: greedy decoding, or a fixed seed. */
export function isDeterministic(body: ChatCompletionRequest): boolean {
  return body.temperature === 0 || (body.seed !== undefined && body.seed !== null);
}

export interface CacheDecision {
  /** Look the request up (exact, then semantic). */
  lookup: boolean;
  /** Store its answer. */
  store: boolean;
}

/** Combines the route's mode, the request's determinism and the client's directive. */
export function decide(mode: CacheMode, directive: CacheDirective, body: ChatCompletionRequest): CacheDecision {
  if (mode === 'off' || directive === 'skip') return { lookup: false, store: false };
  const cacheable = mode === 'always' || directive === 'force' || directive === 'refresh' || isDeterministic(body);
  if (!cacheable) return { lookup: false, store: false };
  return { lookup: directive !== 'refresh', store: true };
}

/** Text content of a message: a string, or the text of text-only parts; undefined when it holds other parts (images...). */
export function messageText(m: ChatMessage): string | undefined {
  if (typeof m.content === 'string') return m.content;
  if (m.content === null || m.content === undefined) return '';
  let text = '';
  for (const part of m.content) {
    if (part.type !== 'text' || typeof (part as { text?: unknown }).text !== 'string') return undefined;
    text += (part as { text: string }).text;
  }
  return text;
}

/** A message in canonical form: text-only content as one string, keys sorted by the serializer. */
function normalizeMessage(m: ChatMessage): unknown {
  const text = messageText(m);
  return { ...m, content: text ?? m.content };
}

/** JSON with object keys sorted, so the same request always hashes the same. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const keys = Object.keys(value).sort();
  let out = '{';
  for (const k of keys) {
    const v = (value as Record<string, unknown>)[k];
    if (v === undefined) continue;
    if (out.length > 1) out += ',';
    out += `${JSON.stringify(k)}:${canonicalJson(v)}`;
  }
  return `${out}}`;
}

/** The parameters that shape the answer, normalized (max_tokens = max_completion_tokens, stop as a list). */
function outputParams(body: ChatCompletionRequest): Record<string, unknown> {
  const params: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(body)) {
    if (IRRELEVANT.has(k) || v === undefined || v === null) continue;
    params[k] = v;
  }
  const maxTokens = body.max_completion_tokens ?? body.max_tokens;
  delete params.max_completion_tokens;
  delete params.max_tokens;
  if (maxTokens !== undefined && maxTokens !== null) params.max_tokens = maxTokens;
  if (typeof params.stop === 'string') params.stop = [params.stop];
  if (params.n === 1) delete params.n;
  return params;
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

export interface CacheIdentity {
  /** `<tenant>/<route>/<sha256>`. */
  exactKey: string;
  /** Semantic scope (sha256), or undefined when the request cannot be matched by meaning. */
  scope?: string;
  /** The last user message (compared by meaning within the scope). */
  question?: string;
}

/**
 * The start of every key of a tenant's route: `<tenant>/<route>/`, the route URI-encoded (model
 * names may hold `/`; tenant ids never do). Stores split keys on `/`.
 */
export function keyPrefix(tenantId: string, route?: string): string {
  return route === undefined ? `${tenantId}/` : `${tenantId}/${encodeRoute(route)}/`;
}

export function encodeRoute(route: string): string {
  return encodeURIComponent(route);
}

/**
 * The request's cache identity. `route` is the public model name (aliases resolved), so two
 * aliases of one model share entries. `embedderId` is part of the semantic scope.
 */
export function cacheIdentity(tenantId: string, route: string, body: ChatCompletionRequest, embedderId: string | undefined): CacheIdentity {
  const messages = body.messages.map(normalizeMessage);
  const params = canonicalJson(outputParams(body));
  const exactKey = `${keyPrefix(tenantId, route)}${sha256(`${canonicalJson(messages)}\n${params}`)}`;
  if (embedderId === undefined) return { exactKey };
  const last = body.messages[body.messages.length - 1];
  if (!last || last.role !== 'user') return { exactKey };
  const question = messageText(last);
  if (question === undefined || question.trim() === '') return { exactKey };
  const context = canonicalJson(messages.slice(0, -1));
  // Tenant and route are hashed in as well as kept in the entry: isolation never depends on the
  // index alone.
  const scope = sha256(`${tenantId}\n${route}\n${embedderId}\n${context}\n${params}`);
  return { exactKey, scope, question };
}
