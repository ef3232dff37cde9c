import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestGateway, auth, hello, postJson, startGateway } from '../helpers/gateway.js';

describe('malformed input: a clear 4xx naming the field, never a 500', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({ server: { bodyLimitBytes: 2048 } });
  });
  afterAll(() => gw.close());
  const chat = (body: unknown, headers: Record<string, string> = {}) =>
    postJson(`${gw.url}/v1/chat/completions`, body, { ...auth(gw.apiKey), ...headers });

  it.each([
    ['malformed JSON', '{"model": "sim-small", "messages": [', 400, 'invalid_json', null],
    ['a JSON array body', '[]', 400, 'invalid_request', null],
    ['missing messages', { model: 'sim-small' }, 400, 'missing_field', 'messages'],
    ['missing model', { messages: [{ role: 'user', content: 'hi' }] }, 400, 'missing_field', 'model'],
    ['empty messages', { model: 'sim-small', messages: [] }, 400, 'invalid_value', 'messages'],
    ['messages not an array', { model: 'sim-small', messages: 'hi' }, 400, 'invalid_type', 'messages'],
    ['a bad role', { model: 'sim-small', messages: [{ role: 'robot', content: 'hi' }] }, 400, 'invalid_value', 'messages[0].role'],
    ['a user message without content', { model: 'sim-small', messages: [{ role: 'user' }] }, 400, 'missing_field', 'messages[0].content'],
    ['max_tokens as a string', hello('sim-small', { max_tokens: '10' }), 400, 'invalid_type', 'max_tokens'],
    ['temperature out of range', hello('sim-small', { temperature: 5 }), 400, 'invalid_value', 'temperature'],
    ['stream not a boolean', hello('sim-small', { stream: 'yes' }), 400, 'invalid_type', 'stream'],
    ['model not a string', { model: 42, messages: [{ role: 'user', content: 'x' }] }, 400, 'invalid_type', 'model'],
    ['a model name with a control character', hello('sim-small\u0000'), 400, 'invalid_value', 'model'],
    ['a user with a NUL', hello('sim-small', { user: 'a\u0000b' }), 400, 'invalid_value', 'user'],
    ['an unknown model', hello('gpt-unknown'), 404, 'model_not_found', 'model'],
  ])('%s', async (_name, body, status, code, param) => {
    const res = await chat(body);
    expect(res.status).toBe(status);
    expect(res.body.error.code).toBe(code);
    expect(res.body.error.param).toBe(param);
    expect(typeof res.body.error.message).toBe('string');
    if (param) expect(res.body.error.message).toContain(param);
  });

  it('413 for a body over the configured limit, naming the limit', async () => {
    const res = await chat(hello('sim-small', { messages: [{ role: 'user', content: 'x'.repeat(5000) }] }));
    expect(res.status).toBe(413);
    expect(res.body.error.message).toContain('2048 bytes');
  });

  it('415 for a non-JSON content type; 400 for an empty body', async () => {
    const res = await postJson(`${gw.url}/v1/chat/completions`, 'hello', { ...auth(gw.apiKey), 'content-type': 'text/plain' });
    expect(res.status).toBe(415);
    expect(res.body.error.code).toBe('unsupported_media_type');
    const empty = await request(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { ...auth(gw.apiKey), 'content-type': 'application/json' }, body: '' });
    expect(empty.statusCode).toBe(400);
    expect(((await empty.body.json()) as any).error.code).toBe('invalid_json');
  });

  it('rejects prototype-poisoning keys', async () => {
    const res = await chat('{"model":"sim-small","messages":[{"role":"user","content":"x"}],"__proto__":{"admin":true}}');
    expect(res.status).toBe(400);
  });

  it('404 in the OpenAI envelope for an unknown route', async () => {
    const res = await postJson(`${gw.url}/v1/nope`, {}, auth(gw.apiKey));
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe('route_not_found');
  });

  it('never answers 5xx to random garbage (fuzz, seeded)', async () => {
    let seed = 12345;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const values: unknown[] = [null, true, 0, -1, 1e308, 'x', '', [], {}, [{}], { role: 'user' }, 'sim-small', [1, 2], { a: { b: [] } }];
    const pick = () => values[Math.floor(rnd() * values.length)];
    const fields = ['model', 'messages', 'stream', 'max_tokens', 'temperature', 'n', 'stop', 'tools', 'tool_choice', 'stream_options', 'user', 'seed', 'response_format'];
    const statuses = new Set<number>();
    for (let i = 0; i < 150; i++) {
      const body: Record<string, unknown> = { model: 'sim-small', messages: [{ role: 'user', content: 'hi' }] };
      for (const f of fields) if (rnd() < 0.3) body[f] = pick();
      const res = await chat(body);
      statuses.add(res.status);
      expect(res.status, JSON.stringify(body)).toBeLessThan(500);
      if (res.status >= 400) expect(res.body.error.message.length).toBeGreaterThan(5);
    }
    expect(statuses.has(400)).toBe(true);
  });

  it('embeddings: missing or empty input is a 400 naming input', async () => {
    const a = await postJson(`${gw.url}/v1/embeddings`, { model: 'sim-embed' }, auth(gw.apiKey));
    expect(a.status).toBe(400);
    expect(a.body.error.param).toBe('input');
    const b = await postJson(`${gw.url}/v1/embeddings`, { model: 'sim-embed', input: [] }, auth(gw.apiKey));
    expect(b.status).toBe(400);
    expect(b.body.error.param).toBe('input');
  });
});
