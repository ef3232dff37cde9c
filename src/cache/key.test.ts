import { describe, expect, it } from 'vitest';
import type { ChatCompletionRequest } from '../providers/types.js';
import { cacheIdentity, decide, parseDirective } from './key.js';

const base: ChatCompletionRequest = {
  model: 'gpt',
  temperature: 0,
  messages: [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'What is a cache?' },
  ],
};
const key = (body: ChatCompletionRequest, tenant = 'ten_a', route = 'gpt') => cacheIdentity(tenant, route, body, 'emb:v1').exactKey;
const scope = (body: ChatCompletionRequest, tenant = 'ten_a') => cacheIdentity(tenant, 'gpt', body, 'emb:v1').scope;

describe('exact cache key', () => {
  it.each<[string, Partial<ChatCompletionRequest>]>([
    ['temperature', { temperature: 0.2 }],
    ['top_p', { top_p: 0.5 }],
    ['max_tokens', { max_tokens: 10 }],
    ['max_completion_tokens', { max_completion_tokens: 11 }],
    ['seed', { seed: 7 }],
    ['stop', { stop: ['\n'] }],
    ['n', { n: 2 }],
    ['presence_penalty', { presence_penalty: 1 }],
    ['frequency_penalty', { frequency_penalty: 1 }],
    ['tools', { tools: [{ type: 'function', function: { name: 'f' } }] }],
    ['tool_choice', { tool_choice: 'required' }],
    ['response_format', { response_format: { type: 'json_object' } }],
    ['logit_bias', { logit_bias: { '50256': -100 } }],
    ['an unknown parameter', { reasoning_effort: 'high' }],
  ])('changes with %s', (_name, change) => {
    expect(key({ ...base, ...change })).not.toBe(key(base));
  });

  it.each<[string, Partial<ChatCompletionRequest>]>([
    ['stream', { stream: true }],
    ['stream_options', { stream_options: { include_usage: true } }],
    ['user', { user: 'u-1' }],
    ['metadata', { metadata: { a: 1 } }],
    ['store', { store: true }],
    ['n = 1', { n: 1 }],
    ['model (the route decides)', { model: 'alias-of-gpt' }],
  ])('ignores %s', (_name, change) => {
    expect(key({ ...base, ...change })).toBe(key(base));
  });

  it('treats equivalent forms alike: max_tokens = max_completion_tokens, stop string = [string], text parts = string, key order', () => {
    expect(key({ ...base, max_tokens: 5 })).toBe(key({ ...base, max_completion_tokens: 5 }));
    expect(key({ ...base, stop: 'x' })).toBe(key({ ...base, stop: ['x'] }));
    const parts = { ...base, messages: [base.messages[0]!, { role: 'user' as const, content: [{ type: 'text', text: 'What is ' }, { type: 'text', text: 'a cache?' }] }] };
    expect(key(parts)).toBe(key(base));
    expect(key({ ...base, response_format: { type: 'json_schema', json_schema: { a: 1, b: 2 } } })).toBe(
      key({ ...base, response_format: { json_schema: { b: 2, a: 1 }, type: 'json_schema' } }),
    );
  });

  it('changes with the messages, the tenant and the route, and starts with tenant/route/', () => {
    expect(key({ ...base, messages: [{ role: 'user', content: 'What is a cache!' }] })).not.toBe(key(base));
    expect(key(base, 'ten_b')).not.toBe(key(base));
    expect(key(base, 'ten_a', 'other')).not.toBe(key(base));
    expect(key(base, 'ten_a', 'org/model')).toMatch(/^ten_a\/org%2Fmodel\/[0-9a-f]{64}$/);
  });
});

describe('semantic scope', () => {
  it('ignores the last user message but not the system prompt, earlier turns, parameters or tenant', () => {
    const other = { ...base, messages: [base.messages[0]!, { role: 'user' as const, content: 'Explain caching.' }] };
    expect(scope(other)).toBe(scope(base));
    expect(scope({ ...base, messages: [{ role: 'system', content: 'Be long.' }, base.messages[1]!] })).not.toBe(scope(base));
    expect(scope({ ...base, max_tokens: 3 })).not.toBe(scope(base));
    expect(scope(base, 'ten_b')).not.toBe(scope(base));
    expect(cacheIdentity('ten_a', 'gpt', base, 'emb:v2').scope).not.toBe(scope(base));
  });

  it('has no scope when the last message is not a user text', () => {
    expect(scope({ ...base, messages: [...base.messages, { role: 'assistant', content: 'ok' }] })).toBeUndefined();
    expect(scope({ ...base, messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] })).toBeUndefined();
    expect(cacheIdentity('t', 'r', base, undefined).scope).toBeUndefined();
  });
});

describe('cache decision', () => {
  const warm = { ...base, temperature: 0.8 };
  it('caches deterministic requests by default, others only when forced', () => {
    expect(decide('deterministic', 'default', base)).toEqual({ lookup: true, store: true });
    expect(decide('deterministic', 'default', { ...warm, seed: 1 })).toEqual({ lookup: true, store: true });
    expect(decide('deterministic', 'default', warm)).toEqual({ lookup: false, store: false });
    expect(decide('deterministic', 'force', warm)).toEqual({ lookup: true, store: true });
    expect(decide('always', 'default', warm)).toEqual({ lookup: true, store: true });
  });
  it('skip and off win; refresh stores without looking up', () => {
    expect(decide('always', 'skip', base)).toEqual({ lookup: false, store: false });
    expect(decide('off', 'force', base)).toEqual({ lookup: false, store: false });
    expect(decide('deterministic', 'refresh', base)).toEqual({ lookup: false, store: true });
    expect(decide('deterministic', 'refresh', warm)).toEqual({ lookup: false, store: true });
  });
  it('parses the directive header', () => {
    expect(parseDirective(undefined)).toBe('default');
    expect(parseDirective(' Force ')).toBe('force');
    expect(parseDirective('nope')).toBeUndefined();
  });
});
