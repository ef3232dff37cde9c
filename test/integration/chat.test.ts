import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestGateway, auth, hello, httpSimConfig, postJson, postStream, startGateway, startSim } from '../helpers/gateway.js';
import type { SimServer } from '../../src/providers/simulated/server.js';

describe('chat completions through the built-in simulator (no config at all)', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway();
  });
  afterAll(() => gw.close());

  it('answers a JSON request with Tollgate headers and exact cost', async () => {
    const res = await postJson(`${gw.url}/v1/chat/completions`, hello('sim-small', { seed: 7 }), { ...auth(gw.apiKey), 'x-request-id': 'my-req-1' });
    expect(res.status).toBe(200);
    expect(res.body.object).toBe('chat.completion');
    expect(res.body.choices[0].message.role).toBe('assistant');
    expect(typeof res.body.choices[0].message.content).toBe('string');
    expect(res.headers.get('x-request-id')).toBe('my-req-1');
    expect(res.headers.get('x-tollgate-model')).toBe('sim-small');
    expect(res.headers.get('x-tollgate-attempts')).toBe('1');
    const u = res.body.usage;
    // sim-small: $0.15 / $0.60 per million tokens.
    const expected = (u.prompt_tokens * 0.15 + u.completion_tokens * 0.6) / 1e6;
    expect(Number(res.headers.get('x-tollgate-cost-usd'))).toBeCloseTo(expected, 12);
  });

  it('generates a request id when the client sends none, and rejects unsafe ones', async () => {
    const a = await postJson(`${gw.url}/v1/chat/completions`, hello(), auth(gw.apiKey));
    expect(a.headers.get('x-request-id')).toMatch(/^req_[0-9a-f]{32}$/);
    const b = await postJson(`${gw.url}/v1/chat/completions`, hello(), { ...auth(gw.apiKey), 'x-request-id': 'bad id with spaces' });
    expect(b.headers.get('x-request-id')).toMatch(/^req_/);
  });

  it('streams SSE chunks ending in [DONE], without a usage chunk unless asked', async () => {
    const s = await postStream(`${gw.url}/v1/chat/completions`, hello('sim-small', { stream: true }), auth(gw.apiKey));
    expect(s.status).toBe(200);
    expect(s.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(s.sawDone).toBe(true);
    expect(s.events.length).toBeGreaterThan(2);
    expect(s.events.every((e) => e.object === 'chat.completion.chunk')).toBe(true);
    expect(s.events.some((e) => e.usage)).toBe(false); // no usage chunk; `usage: null` may ride along
    expect(s.events.at(-1).choices[0].finish_reason).toMatch(/stop|length/);
  });

  it('forwards the usage chunk when the client asks with stream_options.include_usage', async () => {
    const s = await postStream(
      `${gw.url}/v1/chat/completions`,
      hello('sim-small', { stream: true, stream_options: { include_usage: true } }),
      auth(gw.apiKey),
    );
    const last = s.events.at(-1);
    expect(last.choices).toEqual([]);
    expect(last.usage.completion_tokens).toBeGreaterThan(0);
    expect(last.usage.total_tokens).toBe(last.usage.prompt_tokens + last.usage.completion_tokens);
    expect(s.sawDone).toBe(true);
  });

  it('serves embeddings', async () => {
    const res = await postJson(`${gw.url}/v1/embeddings`, { model: 'sim-embed', input: ['a cat', 'a dog'] }, auth(gw.apiKey));
    expect(res.status).toBe(200);
    expect(res.body.data).toHaveLength(2);
    expect(res.body.data[0].embedding).toHaveLength(256);
    expect(res.body.usage.prompt_tokens).toBeGreaterThan(0);
    expect(Number(res.headers.get('x-tollgate-cost-usd'))).toBeGreaterThan(0);
  });

  it('lists models and retrieves one', async () => {
    const list = await fetch(`${gw.url}/v1/models`, { headers: auth(gw.apiKey) }).then((r) => r.json());
    expect(list.data.map((m: { id: string }) => m.id)).toEqual(['sim-small', 'sim-medium', 'sim-large', 'sim-embed']);
    const one = await fetch(`${gw.url}/v1/models/sim-large`, { headers: auth(gw.apiKey) });
    expect(one.status).toBe(200);
    expect((await one.json()).id).toBe('sim-large');
    const none = await fetch(`${gw.url}/v1/models/gpt-9`, { headers: auth(gw.apiKey) });
    expect(none.status).toBe(404);
  });

  it('rejects a chat request to an embedding model and vice versa, naming the field', async () => {
    const a = await postJson(`${gw.url}/v1/chat/completions`, hello('sim-embed'), auth(gw.apiKey));
    expect(a.status).toBe(400);
    expect(a.body.error.param).toBe('model');
    const b = await postJson(`${gw.url}/v1/embeddings`, { model: 'sim-small', input: 'x' }, auth(gw.apiKey));
    expect(b.status).toBe(400);
  });

  it('serves health, readiness and Prometheus metrics', async () => {
    expect((await fetch(`${gw.url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${gw.url}/readyz`);
    expect(ready.status).toBe(200);
    expect((await ready.json()).checks.storage).toBe('ok');
    await gw.settled(); // settle (which counts the requests) runs after each response
    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    expect(metrics).toMatch(/tollgate_requests_total\{route="\/v1\/chat\/completions",model="sim-small",status="200",tier="none",deployment="sim-small@sim"\} \d+/);
    expect(metrics).toMatch(/tollgate_request_duration_seconds_bucket\{le="0.005",route="\/v1\/chat\/completions"/);
    expect(metrics).toMatch(/tollgate_upstream_attempts_total\{deployment="sim-small@sim",outcome="ok"\} \d+/);
  });
});

describe('over HTTP to a standalone simulator', () => {
  let sim: SimServer;
  let gw: TestGateway;
  beforeAll(async () => {
    sim = await startSim();
    gw = await startGateway(httpSimConfig({ up: sim }, { 'sim-small': { deployments: [{ provider: 'up' }], price: { input: 1, output: 2 } } }));
  });
  afterAll(async () => {
    await gw.close();
    await sim.close();
  });

  it('always asks upstream for stream usage, and bills from it, even when the client did not ask', async () => {
    sim.engine.reset();
    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...auth(gw.apiKey) },
      body: JSON.stringify(hello('sim-small', { stream: true })),
    });
    const text = await res.text();
    expect(text).not.toMatch(/"usage":\{/); // no usage chunk (chunks may carry upstream's "usage":null)
    const upstreamBody = sim.engine.stats().recentRequests.at(-1) as { stream_options?: { include_usage?: boolean } };
    expect(upstreamBody.stream_options?.include_usage).toBe(true);
  });

  it('sends the stream cost as an HTTP trailer', async () => {
    const { request } = await import('undici');
    const res = await request(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...auth(gw.apiKey) },
      body: JSON.stringify(hello('sim-small', { stream: true })),
    });
    await res.body.text();
    expect(res.headers['trailer']).toBe('x-tollgate-cost-usd');
    expect(Number(res.trailers['x-tollgate-cost-usd'])).toBeGreaterThan(0);
  });
});

describe('settle', () => {
  it('records when a key was last used, and counts errors by code', async () => {
    const gw = await startGateway();
    try {
      await postJson(`${gw.url}/v1/chat/completions`, hello('sim-small', { max_tokens: 4 }), auth(gw.apiKey));
      await postJson(`${gw.url}/v1/chat/completions`, hello('nope'), auth(gw.apiKey));
      const keyId = (await gw.gateway.storage.records.listKeys({ tenantId: gw.tenantId })).find((k) => k.kind === 'api')!.id;
      await gw.settled(); // both settled: the error counted, the key's use being written (in the background)
      await expect.poll(async () => (await gw.gateway.storage.records.getKey(keyId))?.lastUsedAt ?? null, { timeout: 10_000, interval: 5 }).not.toBeNull();
      const metrics = await (await fetch(`${gw.url}/metrics`)).text();
      expect(metrics).toMatch(/tollgate_errors_total\{route="\/v1\/chat\/completions",model="unknown",code="model_not_found",tier="none",deployment="none",status="404"\} 1/);
    } finally {
      await gw.close();
    }
  });
});
