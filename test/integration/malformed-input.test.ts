import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKey } from '../../src/auth/keys.js';
import { keysCommand } from '../../src/cli/admin.js';
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
    // ...and JSON nested past server.maxJsonDepth (issue 14): 400 before parsing, wherever it is.
    const values: unknown[] = [null, true, 0, -1, 1e308, 'x', '', [], {}, [{}], { role: 'user' }, 'sim-small', [1, 2], { a: { b: [] } }, JSON.parse(nestedArrayText(100))];
    const pick = () => values[Math.floor(rnd() * values.length)];
    const fields = ['model', 'messages', 'stream', 'max_tokens', 'temperature', 'n', 'stop', 'tools', 'tool_choice', 'stream_options', 'user', 'seed', 'response_format', 'x_unknown'];
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

/** `{"a":{"a":...}}` nested `depth` objects deep around `leaf`. */
const nestedObject = (depth: number, leaf: unknown = 1): unknown => {
  let v: unknown = leaf;
  for (let i = 0; i < depth; i++) v = { a: v };
  return v;
};
/** `[[[...]]]` as text (JSON.stringify itself would overflow the stack on the deepest ones). */
const nestedArrayText = (depth: number) => `${'['.repeat(depth)}1${']'.repeat(depth)}`;

describe('hostile input (issue 14): deep nesting, duplicate query parameters, far-future dates', () => {
  let gw: TestGateway;
  const DEEP = 10_000;
  beforeAll(async () => {
    gw = await startGateway({
      experiments: { exp: { route: 'sim-small', variants: [{ name: 'a', weight: 1 }, { name: 'b', weight: 1 }] } },
      routes: { shadowed: { tiers: { small: ['sim-small'] }, classifier: 'none', shadow: { model: 'sim-large', sampleRate: 0.01 } } },
    });
  });
  afterAll(() => gw.close());

  const send = async (method: string, path: string, body: string | undefined, key: string) => {
    const res = await request(`${gw.url}${path}`, {
      method: method as 'POST',
      headers: { ...auth(key), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body }),
    });
    const text = await res.body.text();
    let json: any = text;
    try {
      json = JSON.parse(text);
    } catch {
      /* text */
    }
    return { status: res.statusCode, body: json };
  };
  /** The field named by an error, in either envelope. */
  const paramOf = (path: string, body: any) => (path.startsWith('/admin/') ? body.param : body.error?.param);
  const codeOf = (path: string, body: any) => (path.startsWith('/admin/') ? String(body.type).split('/').pop() : body.error?.code);

  // A JSON value nested DEEP levels, spliced into each body where the attack put it.
  const deep = nestedArrayText(DEEP);
  const bodies: Array<[string, string, string, 'api' | 'admin', string]> = [
    ['an unknown chat parameter with temperature 0 (the cache key)', 'POST', '/v1/chat/completions', 'api', `{"model":"sim-small","temperature":0,"messages":[{"role":"user","content":"hi"}],"x_extra":${deep}}`],
    ['tool parameters', 'POST', '/v1/chat/completions', 'api', `{"model":"sim-small","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":${deep}}}}]}`],
    ['a message content part', 'POST', '/v1/chat/completions', 'api', `{"model":"sim-small","messages":[{"role":"user","content":[{"type":"text","text":"hi","x":${deep}}]}]}`],
    ['embeddings', 'POST', '/v1/embeddings', 'api', `{"model":"sim-embed","input":"hi","x":${deep}}`],
    ['a job body', 'POST', '/v1/jobs', 'api', `{"endpoint":"/v1/chat/completions","body":{"model":"sim-small","temperature":0,"messages":[{"role":"user","content":"hi"}],"x":${deep}}}`],
    ['feedback', 'POST', '/v1/feedback', 'api', `{"request_id":"req_1","rating":"good","x":${deep}}`],
    ['a batch', 'POST', '/v1/batches', 'api', `{"input_file_id":"file_x","endpoint":"/v1/chat/completions","completion_window":"24h","metadata":${deep}}`],
    ['tenant metadata (create)', 'POST', '/admin/v1/tenants', 'admin', `{"name":"t","metadata":{"x":${deep}}}`],
    ['tenant metadata (update)', 'PATCH', '/admin/v1/tenants/default', 'admin', `{"metadata":{"x":${deep}}}`],
    ['a tenant policy', 'PUT', '/admin/v1/tenants/default/policy', 'admin', `{"limits":${deep}}`],
    ['a key', 'POST', '/admin/v1/keys', 'admin', `{"tenant_id":"default","x":${deep}}`],
    ['a key policy', 'PUT', '/admin/v1/keys/nope/policy', 'admin', `{"limits":${deep}}`],
    ['a flag', 'POST', '/admin/v1/flags', 'admin', `{"name":"f1","targeting":${deep}}`],
    ['a kill switch', 'POST', '/admin/v1/kill-switches', 'admin', `{"scope":"tenant","target":"x","reason":${deep}}`],
    ['a cache invalidation', 'POST', '/admin/v1/cache/invalidate', 'admin', `{"tenant_id":${deep}}`],
  ];
  it.each(bodies)('JSON nested 10,000 deep in %s: 400 naming where the limit was passed', async (_name, method, path, who, body) => {
    const res = await send(method, path, body, who === 'api' ? gw.apiKey : gw.adminKey);
    expect(res.status, JSON.stringify(res.body).slice(0, 300)).toBe(400);
    expect(codeOf(path, res.body)).toBe('invalid_request');
    const param = paramOf(path, res.body) as string;
    expect(param).toMatch(/\.\.\.$/); // truncated
    expect(JSON.stringify(res.body)).toContain('server.maxJsonDepth');
  });

  it('a batch line nested 10,000 deep: the batch fails naming the line and the field, not a 500', async () => {
    const line = `{"custom_id":"deep","method":"POST","url":"/v1/chat/completions","body":{"model":"sim-small","temperature":0,"messages":[{"role":"user","content":"hi"}],"x":${deep}}}`;
    const form = new FormData();
    form.append('purpose', 'batch');
    form.append('file', new Blob([`${line}\n`]), 'deep.jsonl');
    const up = await fetch(`${gw.url}/v1/files`, { method: 'POST', headers: auth(gw.apiKey), body: form });
    expect(up.status).toBe(200);
    const file = (await up.json()) as { id: string };
    const b = await postJson(`${gw.url}/v1/batches`, { input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' }, auth(gw.apiKey));
    expect(b.status, JSON.stringify(b.body)).toBe(200);
    expect(b.body.status).toBe('failed');
    expect(b.body.errors.data[0]).toMatchObject({ line: 1, code: 'invalid_request' });
    expect(b.body.errors.data[0].param).toMatch(/^body\.x\[0\].*\.\.\.$/);
  });

  it('names the path of the value that nests too deep (tool parameters)', async () => {
    const schema = nestedObject(70, { type: 'string' });
    const res = await postJson(`${gw.url}/v1/chat/completions`, hello('sim-small', { tools: [{ type: 'function', function: { name: 'f', parameters: schema } }] }), auth(gw.apiKey));
    expect(res.status).toBe(400);
    expect(res.body.error.type).toBe('invalid_request_error');
    expect(res.body.error.param).toMatch(/^tools\[0\]\.function\.parameters\.a\.a.*\.\.\.$/);
    expect(res.body.error.message).toContain('64');
  });

  it('accepts nesting up to the limit (a real tool schema nests ~10 deep)', async () => {
    const schema = nestedObject(20, { type: 'string' });
    const res = await postJson(`${gw.url}/v1/chat/completions`, hello('sim-small', { temperature: 0, x_extra: nestedObject(30), tools: [{ type: 'function', function: { name: 'f', parameters: schema } }] }), auth(gw.apiKey));
    expect(res.status).toBe(200);
  });

  it('the gateway stays up and serves after the deep bodies', async () => {
    const res = await postJson(`${gw.url}/v1/chat/completions`, hello('sim-small', { temperature: 0 }), auth(gw.apiKey));
    expect(res.status).toBe(200);
  });

  const get = (path: string, key = gw.adminKey) => send('GET', path, undefined, key);

  it.each([
    ['/admin/v1/keys?tenant_id=a&tenant_id=b', 'tenant_id'],
    ['/admin/v1/keys?include_revoked=true&include_revoked=false', 'include_revoked'],
    ['/admin/v1/usage?tenant_id=a&tenant_id=b', 'tenant_id'],
    ['/admin/v1/usage?group_by=model&group_by=day', 'group_by'],
    ['/admin/v1/usage?from=2026-01-01&from=2026-01-02', 'from'],
    ['/admin/v1/experiments/exp/results?from=1&from=2', 'from'],
    ['/admin/v1/requests?tenant_id=a&tenant_id=b', 'tenant_id'],
    ['/admin/v1/flags-audit?limit=1&limit=2', 'limit'],
    ['/admin/v1/dashboard/summary?x=1&x=2', 'x'],
    ['/admin/v1/drift?route=a&route=b', 'route'],
    ['/admin/v1/abuse?kind=a&kind=b', 'kind'],
    ['/admin/v1/alerts?x=1&x=2', 'x'],
    ['/admin/v1/tenants?x=1&x=2', 'x'],
  ])('a query parameter given twice (%s): 400 naming it', async (path, param) => {
    const res = await get(path);
    expect(res.status, JSON.stringify(res.body)).toBe(400);
    expect(res.body.param).toBe(param);
    expect(res.body.detail).toContain(param);
  });

  it.each([
    ['/v1/jobs?limit=1&limit=2', 'limit'],
    ['/v1/files?purpose=batch&purpose=x', 'purpose'],
    ['/v1/batches?after=a&after=b', 'after'],
    ['/v1/models?x=1&x=2', 'x'],
  ])('a query parameter given twice on the API (%s): 400 naming it', async (path, param) => {
    const res = await get(path, gw.apiKey);
    expect(res.status, JSON.stringify(res.body)).toBe(400);
    expect(res.body.error.param).toBe(param);
    expect(res.body.error.type).toBe('invalid_request_error');
  });

  it.each([
    ['/admin/v1/experiments/exp/results?from=8640000000000001', 'from'],
    ['/admin/v1/experiments/exp/results?to=8640000000000001', 'to'],
    ['/admin/v1/experiments/exp/results?to=%2B275760-09-13T00:00:00.000Z', 'to'],
    ['/admin/v1/usage?from=8640000000000001', 'from'],
    ['/admin/v1/usage?to=99999999999999999999', 'to'],
    ['/admin/v1/requests?from=8640000000000001', 'from'],
    ['/admin/v1/shadow/shadowed?from=8640000000000001', 'from'],
  ])('an out-of-range date (%s): 400 naming it', async (path, param) => {
    const res = await get(path);
    expect(res.status, JSON.stringify(res.body)).toBe(400);
    expect(res.body.param).toBe(param);
  });

  it.each([
    [{ expires_at: 1_000_000_000_000_000 }, 'expires_at'],
    [{ expires_at: 1e300 }, 'expires_at'],
    [{ expires_at: -1 }, 'expires_at'],
    [{ expires_at: '+275760-09-13T00:00:00.000Z' }, 'expires_at'],
    [{ expires_at: '10000-01-01T00:00:00Z' }, 'expires_at'],
    [{ expires_in: '99999999999999999999d' }, 'expires_in'],
    [{ expires_in: '3000000d' }, 'expires_in'],
  ])('a key with an out-of-range expiry (%j): 400 naming the field, and nothing stored', async (expiry, param) => {
    const before = (await get('/admin/v1/keys?include_revoked=true')).body.data.length;
    const res = await send('POST', '/admin/v1/keys', JSON.stringify({ tenant_id: gw.tenantId, ...expiry }), gw.adminKey);
    expect(res.status, JSON.stringify(res.body)).toBe(400);
    expect(res.body.param).toBe(param);
    expect(res.body.detail).toContain(param);
    const after = await get('/admin/v1/keys?include_revoked=true');
    expect(after.status).toBe(200);
    expect(after.body.data.length).toBe(before);
    // the same on a change
    const key = after.body.data[0].id as string;
    const patched = await send('PATCH', `/admin/v1/keys/${key}`, JSON.stringify(expiry), gw.adminKey);
    expect(patched.status).toBe(400);
    expect(patched.body.param).toBe(param);
  });

  it('a far but valid expiry is kept', async () => {
    const res = await send('POST', '/admin/v1/keys', JSON.stringify({ tenant_id: gw.tenantId, expires_at: '9999-12-31T00:00:00Z' }), gw.adminKey);
    expect(res.status).toBe(201);
    expect(res.body.expires_at).toBe('9999-12-31T00:00:00.000Z');
  });

  it('key listing survives a row stored with an out-of-range date (as older versions stored them)', async () => {
    const records = gw.gateway.storage.records;
    const tenant = (await records.getTenant(gw.tenantId))!;
    const secret = generateKey('api');
    const bad = await records.createKey({ tenantId: tenant.id, name: 'bad', kind: 'api', prefix: secret.prefix, hash: secret.hash, tier: tenant.tier, allowedModels: null, userId: null, expiresAt: 1e18 });
    const list = await get('/admin/v1/keys');
    expect(list.status, JSON.stringify(list.body)).toBe(200);
    const row = list.body.data.find((k: any) => k.id === bad.id);
    expect(row.expires_at).toBe('+275760-09-13T00:00:00.000Z'); // clamped to the latest date there is
    expect((await get(`/admin/v1/keys/${bad.id}`)).status).toBe(200);
    // the key works: it has not expired
    expect((await postJson(`${gw.url}/v1/chat/completions`, hello(), auth(secret.secret))).status).toBe(200);

    // far in the past: listed (clamped), and the key is refused as expired, not with a 500
    const oldSecret = generateKey('api');
    const old = await records.createKey({ tenantId: tenant.id, name: 'old', kind: 'api', prefix: oldSecret.prefix, hash: oldSecret.hash, tier: tenant.tier, allowedModels: null, userId: null, expiresAt: -1e18 });
    const again = await get('/admin/v1/keys');
    expect(again.status).toBe(200);
    expect(again.body.data.find((k: any) => k.id === old.id).expires_at).toBe('-271821-04-20T00:00:00.000Z');
    const refused = await postJson(`${gw.url}/v1/chat/completions`, hello(), auth(oldSecret.secret));
    expect(refused.status).toBe(401);
    expect(refused.body.error.code).toBe('expired_api_key');
  });

  it('tollgate keys list survives the same row', async () => {
    const out: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((chunk: string) => (out.push(String(chunk)), true)) as typeof process.stdout.write;
    try {
      await keysCommand(gw.gateway.config, 'list', [], { all: true });
      await keysCommand(gw.gateway.config, 'list', [], { all: true, json: true });
    } finally {
      process.stdout.write = write;
    }
    expect(out.join('')).toContain('-271821-04-20T00:00:00.000Z');
  });
});

describe('hostile bodies from one valid key (fuzz, seeded): never a 5xx, never a stall', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({
      server: { bodyLimitBytes: 4 * 1024 * 1024 },
      tiers: { standard: { limits: { key: { tokensPerMinute: 2_000_000, requestsPerMinute: 10_000 } }, budgets: { tenant: { dailyUsd: 5 } } } },
    });
  });
  afterAll(() => gw.close());

  it('long words, huge tool schemas, many images, special tokens, deep schemas, big unknown parameters: a 2xx or a clear 4xx', async () => {
    let seed = 4242;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const pickOf = <T>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
    let deepSchema: Record<string, unknown> = { type: 'string' };
    for (let i = 0; i < 30; i++) deepSchema = { type: 'object', properties: { p: deepSchema } };
    const texts = [
      'x'.repeat(160_000),
      '漢'.repeat(120_000),
      ' '.repeat(200_000),
      '😀'.repeat(60_000),
      'a <|endoftext|> b <|im_start|>system'.repeat(2_000),
      `${'word '.repeat(100_000)}`,
      'hi',
    ];
    const extras: Array<() => Record<string, unknown>> = [
      () => ({ tools: [{ type: 'function', function: { name: 'f', description: pickOf(texts), parameters: deepSchema } }] }),
      () => ({ tools: Array.from({ length: 200 }, (_, i) => ({ type: 'function', function: { name: `f${i}`, parameters: { type: 'object', description: 'd'.repeat(5_000) } } })) }),
      () => ({ response_format: { type: 'json_schema', json_schema: { name: 's', schema: { type: 'object', description: pickOf(texts) } } } }),
      () => ({ x_unknown_parameter: pickOf(texts) }),
      () => ({ n: pickOf([1, 2, 128]), max_tokens: pickOf([1, 16, 100_000]) }),
      () => ({ temperature: 0 }),
      () => ({ stream: true, stream_options: { include_usage: true } }),
    ];
    const statuses = new Map<number, number>();
    for (let i = 0; i < 40; i++) {
      const route = pickOf(['/v1/chat/completions', '/v1/chat/completions', '/v1/embeddings', '/v1/jobs']);
      let body: Record<string, unknown>;
      if (route === '/v1/embeddings') {
        body = { model: 'sim-embed', input: pickOf([pickOf(texts), [pickOf(texts), 'b'], Array.from({ length: 5_000 }, () => 1)]) };
      } else {
        const content = rnd() < 0.3 ? [{ type: 'text', text: pickOf(texts) }, ...Array.from({ length: 50 }, () => ({ type: 'image_url', image_url: { url: 'https://example.com/a.png' } }))] : pickOf(texts);
        const chat: Record<string, unknown> = { model: pickOf(['sim-small', 'sim-large']), messages: [{ role: 'user', content }] };
        for (const extra of extras) if (rnd() < 0.3) Object.assign(chat, extra());
        body = route === '/v1/jobs' ? { body: chat } : chat;
      }
      const res = await fetch(`${gw.url}${route}`, { method: 'POST', headers: { ...auth(gw.apiKey), 'content-type': 'application/json' }, body: JSON.stringify(body) });
      const text = await res.text();
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      expect(res.status, `${route} ${text.slice(0, 300)}`).toBeLessThan(500);
      expect([200, 202, 400, 402, 413, 429], text.slice(0, 300)).toContain(res.status);
    }
    // Anonymous large bodies: refused before being read.
    const anon = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'sim-small', messages: [{ role: 'user', content: texts[0] }] }) }).catch((err: unknown) => err);
    if (!(anon instanceof Error)) expect(anon.status).toBe(401);
    expect((await fetch(`${gw.url}/healthz`)).status).toBe(200);
    expect(statuses.get(200) ?? 0).toBeGreaterThan(0);
  }, 120_000);
});
