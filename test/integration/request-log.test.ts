/**
 * The request log end to end: traffic through a gateway, then GET /admin/v1/requests with each
 * filter, cursor pagination, the tenant opt-in for (redacted) text, and bad parameters.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { SimServer } from '../../src/providers/simulated/server.js';
import { FAST_MODELS, type TestGateway, auth, httpSimConfig, postJson, postStream, startGateway, startSim } from '../helpers/gateway.js';

const chat = (model: string, content: string, extra: Record<string, unknown> = {}) => ({ model, messages: [{ role: 'user', content }], ...extra });

describe('request log: GET /admin/v1/requests', () => {
  let sim: SimServer;
  let gw: TestGateway;
  let optedKey: string;
  const OPTED = 'ten_optin';
  let startedAt: number;
  let jobId: string;

  const list = async (query: string, key = gw.adminKey) => {
    const res = await fetch(`${gw.url}/admin/v1/requests${query ? `?${query}` : ''}`, { headers: auth(key) });
    return { status: res.status, type: res.headers.get('content-type') ?? '', body: (await res.json()) as any };
  };
  const admin = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${gw.url}/admin/v1${path}`, {
      method,
      headers: { ...auth(gw.adminKey), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: res.status, body: (await res.json()) as any };
  };

  beforeAll(async () => {
    sim = await startSim({
      ...FAST_MODELS,
      'sim-slow': { type: 'chat', ttftMs: { median: 150, p95: 150 }, tokensPerSecond: 0, outputTokens: { min: 4, max: 8 }, dimensions: 64 },
    });
    gw = await startGateway(
      httpSimConfig(
        { up: sim },
        {
          'sim-small': { deployments: [{ provider: 'up' }], price: { input: 1, output: 2 } },
          'sim-large': { deployments: [{ provider: 'up' }], price: { input: 3, output: 6 } },
          'sim-slow': { deployments: [{ provider: 'up' }] },
        },
        { requestLog: { flushMs: 50, maxTextChars: 200 }, jobs: { pollMs: 50 } },
      ),
    );
    startedAt = Date.now();
    const h = auth(gw.apiKey);
    const url = `${gw.url}/v1/chat/completions`;
    // Tenant `default` (the demo key): no text kept.
    expect((await postJson(url, chat('sim-small', 'alice asks, mail alice@example.com', { user: 'alice', temperature: 0 }), h)).status).toBe(200);
    const again = await postJson(url, chat('sim-small', 'alice asks, mail alice@example.com', { user: 'alice', temperature: 0 }), h);
    expect(again.headers.get('x-tollgate-cache')).toBe('hit');
    expect((await postJson(url, chat('sim-large', 'bob asks', { user: 'bob' }), h)).status).toBe(200);
    expect((await postStream(url, chat('sim-small', 'stream please', { user: 'bob', stream: true }), h)).status).toBe(200);
    expect((await postJson(url, chat('sim-slow', 'slow one', { user: 'carol' }), h)).status).toBe(200);
    expect((await postJson(url, chat('no-such-model', 'hi'), h)).status).toBe(404);
    expect((await postJson(url, chat('sim-small', 'hi'), auth('tg-wrong-key'))).status).toBe(401);
    const job = await postJson(`${gw.url}/v1/jobs`, { body: chat('sim-small', 'a job') }, h);
    expect(job.status).toBe(202);
    jobId = job.body.id;
    await vi.waitFor(
      async () => expect((await fetch(`${gw.url}/v1/jobs/${jobId}`, { headers: h }).then((r) => r.json() as Promise<any>)).status).toBe('succeeded'),
      { timeout: 10_000, interval: 5 },
    );

    // A tenant that opts in through its policy: its text is kept, redacted.
    expect((await admin('POST', '/tenants', { id: OPTED, name: 'Opted in' })).status).toBe(201);
    expect((await admin('PUT', `/tenants/${OPTED}/policy`, { requestLog: { content: true } })).status).toBe(200);
    optedKey = (await admin('POST', '/keys', { tenant_id: OPTED })).body.key;
    const secret = 'Card 4111 1111 1111 1111, phone +1 (555) 123-4567, mail jane.doe@example.org. ' + 'x'.repeat(400);
    expect((await postJson(url, chat('sim-small', secret, { user: 'jane' }), auth(optedKey))).status).toBe(200);
    await gw.settled(); // every request observed by the request log (the job's run included)
  });

  afterAll(async () => {
    await gw?.close();
    await sim?.close();
  });

  it('lists every request newest first with its metadata, in the documented fields', async () => {
    const { status, body } = await list('limit=1000');
    expect(status).toBe(200);
    expect(body).toMatchObject({ object: 'list', has_more: false, next_cursor: null });
    const rows = body.data as any[];
    expect(rows.length).toBe(9);
    const ts = rows.map((r) => Date.parse(r.created_at));
    expect([...ts].sort((a, b) => b - a)).toEqual(ts);
    const large = rows.find((r) => r.model === 'sim-large');
    expect(Object.keys(large).sort()).toEqual(
      [
        'id', 'object', 'request_id', 'created_at', 'tenant_id', 'key_id', 'user', 'route', 'model', 'served_model', 'deployment', 'tier',
        'status', 'error_code', 'cache', 'latency_ms', 'ttft_ms', 'upstream_ms', 'attempts', 'prompt_tokens', 'completion_tokens',
        'cost_usd', 'stream', 'trace_id', 'job_id',
      ].sort(),
    );
    expect(large).toMatchObject({
      tenant_id: gw.tenantId, user: 'bob', route: '/v1/chat/completions', served_model: 'sim-large', status: 200,
      error_code: null, cache: 'bypass', attempts: 1, stream: false, job_id: null,
    });
    expect(large.prompt_tokens).toBeGreaterThan(0);
    expect(large.completion_tokens).toBeGreaterThan(0);
    expect(Number(large.cost_usd)).toBeGreaterThan(0);
    expect(large.upstream_ms).toBeGreaterThanOrEqual(0);
    expect(large.latency_ms).toBeGreaterThanOrEqual(large.upstream_ms);
    const streamed = rows.find((r) => r.stream === true);
    expect(streamed).toMatchObject({ user: 'bob', status: 200 });
    expect(streamed.ttft_ms).not.toBeNull();
    expect(rows.find((r) => r.status === 404)).toMatchObject({ error_code: 'model_not_found', model: 'no-such-model', served_model: null });
    expect(rows.find((r) => r.status === 401)).toMatchObject({ tenant_id: null, key_id: null, error_code: 'invalid_api_key' });
    expect(rows.find((r) => r.job_id === jobId)).toMatchObject({ route: '/v1/jobs', status: 200, tenant_id: gw.tenantId, stream: false });
  });

  it('keeps no text for tenants that did not opt in; redacted, capped text for one that did', async () => {
    const { body } = await list(`tenant_id=${gw.tenantId}&limit=1000`);
    expect(body.data.length).toBe(7);
    for (const row of body.data) {
      expect(row).not.toHaveProperty('prompt');
      expect(row).not.toHaveProperty('answer');
    }
    const opted = (await list(`tenant_id=${OPTED}`)).body.data;
    expect(opted).toHaveLength(1);
    const [row] = opted;
    expect(row.prompt).toMatch(/^user: Card \[card\], phone \[phone\], mail \[email\]\. x+…$/);
    expect(row.prompt.length).toBeLessThanOrEqual(201);
    expect(row.prompt).not.toMatch(/4111|555|jane/);
    expect(typeof row.answer).toBe('string');
    expect(row.answer.length).toBeGreaterThan(0);
  });

  it('stops keeping text once the tenant turns the opt-in off', async () => {
    expect((await admin('DELETE', `/tenants/${OPTED}/policy`)).status).toBe(200);
    expect((await postJson(`${gw.url}/v1/chat/completions`, chat('sim-small', 'mail x@y.io', { user: 'jane' }), auth(optedKey))).status).toBe(200);
    await gw.settled();
    const [newest] = (await list(`tenant_id=${OPTED}&limit=1`)).body.data;
    expect(newest).not.toHaveProperty('prompt');
    expect(newest).not.toHaveProperty('answer');
  });

  it('filters by user, model (requested or served), status, cache outcome, time and latency', async () => {
    const users = (await list('user=alice')).body.data;
    expect(users).toHaveLength(2);
    expect(users.every((r: any) => r.user === 'alice')).toBe(true);

    expect((await list('model=sim-large')).body.data.map((r: any) => r.served_model)).toEqual(['sim-large']);
    expect((await list('model=no-such-model')).body.data).toHaveLength(1);

    expect((await list('status=401')).body.data.map((r: any) => r.status)).toEqual([401]);
    const fourxx = (await list('status=4xx')).body.data.map((r: any) => r.status).sort();
    expect(fourxx).toEqual([401, 404]);

    const hits = (await list('cache=hit')).body.data;
    expect(hits).toHaveLength(1);
    expect(hits[0]).toMatchObject({ user: 'alice', cache: 'hit' });

    // Latency: exactly the rows at or above the bound, whatever the latencies were on this machine.
    const all = (await list('limit=1000')).body.data as any[];
    const latencies = all.map((r) => r.latency_ms as number);
    const atLeast = async (ms: number) => (await list(`min_latency_ms=${ms}&limit=1000`)).body.data.map((r: any) => r.id);
    const threshold = all.find((r) => r.model === 'sim-slow').latency_ms;
    expect(await atLeast(threshold)).toEqual(all.filter((r) => r.latency_ms >= threshold).map((r) => r.id));
    expect(await atLeast(threshold)).toContain(all.find((r) => r.model === 'sim-slow').id);
    const longest = Math.max(...latencies);
    expect(await atLeast(longest)).toEqual(all.filter((r) => r.latency_ms === longest).map((r) => r.id));
    expect(await atLeast(longest + 1)).toEqual([]);
    expect(await atLeast(Math.min(...latencies))).toEqual(all.map((r) => r.id));

    expect((await list(`to=${startedAt - 1}`)).body.data).toHaveLength(0);
    const recent = (await list(`from=${new Date(startedAt - 1000).toISOString()}&limit=1000`)).body.data;
    expect(recent.length).toBeGreaterThanOrEqual(9);
    expect((await list(`tenant_id=${gw.tenantId}&user=bob&status=2xx`)).body.data).toHaveLength(2);
  });

  it('pages with an opaque cursor: every row once, in order, has_more false at the end', async () => {
    const all = (await list('limit=1000')).body.data.map((r: any) => r.id);
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const { body }: { body: any } = await list(`limit=3${cursor ? `&cursor=${cursor}` : ''}`);
      seen.push(...body.data.map((r: any) => r.id));
      expect(body.has_more).toBe(body.next_cursor !== null);
      cursor = body.next_cursor;
      // Traffic between pages does not shift or repeat what follows.
      if (pages++ === 0) await postJson(`${gw.url}/v1/chat/completions`, chat('sim-small', 'in between'), auth(gw.apiKey));
    } while (cursor);
    expect(seen).toEqual(all);
    expect(pages).toBe(Math.ceil(all.length / 3));
  });

  it('refuses bad parameters with a problem naming the parameter', async () => {
    const cases: Array<[string, string]> = [
      ['status=abc', 'status'],
      ['status=600', 'status'],
      ['cache=sometimes', 'cache'],
      ['limit=0', 'limit'],
      ['limit=1001', 'limit'],
      ['limit=ten', 'limit'],
      ['from=yesterday', 'from'],
      ['to=2026-13-45', 'to'],
      ['from=2000&to=1000', 'from'],
      ['from=9000000000000000&to=1', 'from'],
      ['to=99999999999999999999999', 'to'],
      ['min_latency_ms=-1', 'min_latency_ms'],
      ['cursor=not-a-cursor', 'cursor'],
      ['tenant=x', 'tenant'],
      ['user=', 'user'],
      ['status=200&status=500', 'status'],
    ];
    for (const [query, param] of cases) {
      const res = await list(query);
      expect(res.status, query).toBe(400);
      expect(res.type, query).toMatch(/application\/problem\+json/);
      expect(res.body.param, query).toBe(param);
      expect(res.body.detail, query).toContain(param);
    }
  });

  it('needs an admin key', async () => {
    const res = await list('', gw.apiKey);
    expect(res.status).toBe(403);
    expect(res.type).toMatch(/application\/problem\+json/);
    expect((await fetch(`${gw.url}/admin/v1/requests`)).status).toBe(401);
  });

  it('refuses requestLog in a key policy, naming the field', async () => {
    const keys = (await admin('GET', `/keys?tenant_id=${OPTED}`)).body.data;
    const res = await admin('PUT', `/keys/${keys[0].id}/policy`, { requestLog: { content: true } });
    expect(res.status).toBe(400);
    expect(res.body.param).toBe('requestLog');
  });
});
