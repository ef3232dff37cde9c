/**
 * Issue 14, items 1 and 2: one key's hostile body can neither freeze the gateway (token counting
 * is bounded) nor slip past a budget or a token limit (every billable part is counted before the
 * call). The upstream is a simulator whose request counter shows what reached it.
 */
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { SimServer } from '../../src/providers/simulated/server.js';
import { type TestGateway, auth, httpSimConfig, postJson, startGateway, startSim } from '../helpers/gateway.js';

describe('admission counts every billable part, with bounded work', () => {
  let sim: SimServer;
  let gw: TestGateway;
  beforeAll(async () => {
    sim = await startSim();
    gw = await startGateway(
      httpSimConfig(
        { up: sim },
        {
          'sim-large': { deployments: [{ provider: 'up' }], price: { input: 5, output: 15 } },
          'sim-embed': { type: 'embedding', deployments: [{ provider: 'up' }], price: { input: 0.02 } },
        },
        {
          server: { bodyLimitBytes: 5 * 1024 * 1024 },
          tiers: {
            standard: { budgets: { tenant: { dailyUsd: 0.01 } } },
            free: { limits: { key: { tokensPerMinute: 50_000 } } },
          },
        },
      ),
    );
  });
  afterAll(async () => {
    await gw?.close();
    await sim?.close();
  });

  const chat = (key: string, body: Record<string, unknown>) =>
    postJson(`${gw.url}/v1/chat/completions`, { model: 'sim-large', messages: [{ role: 'user', content: 'Which tool fits?' }], ...body }, auth(key));

  it('a 2.7 MB tool description with max_tokens 1 is refused by a $0.01 budget before any upstream call', async () => {
    const before = sim.engine.stats().total;
    const description = 'Looks things up in the catalogue and returns the best match. '.repeat(45_000); // ~2.7 MB
    const res = await chat(gw.apiKey, {
      max_tokens: 1,
      tools: [{ type: 'function', function: { name: 'lookup', description, parameters: { type: 'object', properties: {} } } }],
    });
    expect(res.status).toBe(402);
    expect(res.body.error.code).toBe('budget_exceeded');
    expect(sim.engine.stats().total).toBe(before);
    // A small request still fits the same budget.
    expect((await chat(gw.apiKey, { max_tokens: 5 })).status).toBe(200);
  });

  it('a token limit reserves tools, response_format schemas and every content part', async () => {
    const key = (await adminKey(gw, 'free')) as string;
    const schemaText = 'A field the model must fill with a careful, complete answer. '.repeat(4_000); // ~50k tokens
    const before = sim.engine.stats().total;
    const big = await chat(key, {
      max_tokens: 5,
      response_format: { type: 'json_schema', json_schema: { name: 'answer', schema: { type: 'object', description: schemaText } } },
    });
    expect(big.status).toBe(429);
    expect(big.body.error.code).toBe('rate_limit_exceeded');
    expect(sim.engine.stats().total).toBe(before);
    const parts = await chat(key, {
      max_tokens: 5,
      messages: [{ role: 'user', content: [{ type: 'text', text: 'What is in these?' }, ...Array.from({ length: 40 }, () => ({ type: 'image_url', image_url: { url: 'https://example.com/a.png' } }))] }],
    });
    // 40 images at 1,600 tokens each is more than the 50,000-token minute.
    expect(parts.status).toBe(429);
  });

  it('hostile long words, through chat and embeddings, are answered (no stall), each estimated at least at its byte count past the exact part', async () => {
    const key = (await adminKey(gw, 'free')) as string;
    // Pre-fix, a 160,000-character word took ~16 s of one core; 4 MB, minutes. Now the first is
    // answered (~20,000 tokens, within the key's minute), the others refused by its token limit:
    // every byte past the exact part counts as a token.
    const x = await chat(key, { max_tokens: 5, messages: [{ role: "user", content: "x".repeat(160_000) }] });
    expect(x.status, JSON.stringify(x.body)).toBe(200);
    for (const content of ['漢'.repeat(400_000), 'q'.repeat(4_000_000)]) {
      const res = await chat(key, { max_tokens: 5, messages: [{ role: 'user', content }] });
      expect(res.status).toBe(429);
    }
    const emb = await postJson(`${gw.url}/v1/embeddings`, { model: 'sim-embed', input: ['y'.repeat(3_000_000)] }, auth(key));
    expect(emb.status).toBe(429);
    const health = await fetch(`${gw.url}/healthz`);
    expect(health.status).toBe(200);
  });
});

describe('large cacheable bodies are not keyed', () => {
  let sim: SimServer;
  let gw: TestGateway;
  beforeAll(async () => {
    sim = await startSim();
    gw = await startGateway(httpSimConfig({ up: sim }, { 'sim-large': { deployments: [{ provider: 'up' }], price: { input: 5, output: 15 } } }, { server: { bodyLimitBytes: 5 * 1024 * 1024 } }));
  });
  afterAll(async () => {
    await gw?.close();
    await sim?.close();
  });

  it('a cacheable body over cache.maxBodyBytes bypasses the cache (no synchronous keying of megabytes); a small one is cached', async () => {
    const ask = (content: string) => postJson(`${gw.url}/v1/chat/completions`, { model: 'sim-large', temperature: 0, max_tokens: 5, messages: [{ role: 'user', content }] }, auth(gw.apiKey));
    const big = 'Tell me about token buckets. '.repeat(12_000); // ~350 KB
    for (let i = 0; i < 2; i++) {
      const res = await ask(big);
      expect(res.status).toBe(200);
      expect(res.headers.get('x-tollgate-cache')).toBe('bypass');
      await gw.settled();
      await gw.gateway.cache.idle();
    }
    expect((await ask('Tell me about token buckets.')).headers.get('x-tollgate-cache')).toBe('miss');
    await gw.settled();
    await gw.gateway.cache.idle();
    expect((await ask('Tell me about token buckets.')).headers.get('x-tollgate-cache')).toBe('hit');
  });
});

describe('one tenant cannot open a circuit breaker for everyone', () => {
  let sim: SimServer;
  let gw: TestGateway;
  beforeAll(async () => {
    sim = await startSim();
    gw = await startGateway(
      httpSimConfig(
        { up: sim },
        {
          'sim-large': { deployments: [{ provider: 'up' }], price: { input: 5, output: 15 } },
          'sim-timeout': { deployments: [{ provider: 'up', model: 'sim-large', timeoutMs: 200 }] },
        },
        { resilience: { breaker: { failureThreshold: 3 }, retry: { maxRetries: 0 } } },
      ),
    );
  });
  afterAll(async () => {
    await gw?.close();
    await sim?.close();
  });

  it("one tenant's own timeouts (its requests hang past the attempt timeout) do not open the breaker for another tenant", async () => {
    const admin = { ...auth(gw.adminKey), 'content-type': 'application/json' };
    await fetch(`${gw.url}/admin/v1/tenants`, { method: 'POST', headers: admin, body: JSON.stringify({ id: 'other', name: 'other' }) });
    const other = ((await (await fetch(`${gw.url}/admin/v1/keys`, { method: 'POST', headers: admin, body: JSON.stringify({ tenant_id: 'other' }) })).json()) as { key: string }).key;
    const ask = (key: string) => postJson(`${gw.url}/v1/chat/completions`, { model: 'sim-timeout', messages: [{ role: 'user', content: 'hi' }] }, auth(key));
    expect((await ask(other)).status).toBe(200); // both tenants have called the deployment
    sim.engine.script(Array.from({ length: 6 }, () => ({ kind: 'hang' as const })));
    for (let i = 0; i < 6; i++) expect((await ask(gw.apiKey)).status).toBe(504); // threshold 3, no retries
    const res = await ask(other);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(gw.gateway.breakers.get('sim-timeout@up').state).toBe('closed');
  });

  it('tool parameters nested 10,000 deep: each request is 400 naming the problem, and the model still serves others', async () => {
    let parameters = '{"type":"string"}';
    for (let i = 0; i < 10_000; i++) parameters = `{"type":"object","properties":{"p":${parameters}}}`;
    const body = `{"model":"sim-large","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","parameters":${parameters}}}]}`;
    const before = sim.engine.stats().total;
    for (let i = 0; i < 6; i++) {
      const res = await postJson(`${gw.url}/v1/chat/completions`, body, auth(gw.apiKey));
      expect(res.status).toBe(400);
      expect(res.body.error.type).toBe('invalid_request_error');
    }
    expect(sim.engine.stats().total).toBe(before);
    const other = await postJson(`${gw.url}/v1/chat/completions`, { model: 'sim-large', messages: [{ role: 'user', content: 'hi' }] }, auth(gw.apiKey));
    expect(other.status).toBe(200);
  });
});

describe('a client that leaves before the first byte is billed for what upstream read', () => {
  let sim: SimServer;
  let gw: TestGateway;
  beforeAll(async () => {
    // An upstream that takes a minute to its first token: the client always leaves first.
    sim = await startSim({
      'sim-slow': { type: 'chat', ttftMs: { median: 60_000, p95: 60_000 }, tokensPerSecond: 0, outputTokens: { min: 8, max: 8 }, dimensions: 64 },
      // First token at once, then one a second: the client always leaves mid-stream.
      'sim-drip': { type: 'chat', ttftMs: { median: 0, p95: 0 }, tokensPerSecond: 1, outputTokens: { min: 500, max: 500 }, dimensions: 64 },
    });
    gw = await startGateway(
      httpSimConfig({ up: sim }, { 'sim-slow': { deployments: [{ provider: 'up' }], price: { input: 5, output: 15 } }, 'sim-drip': { deployments: [{ provider: 'up' }], price: { input: 5, output: 15 } } }),
    );
  });
  afterAll(async () => {
    await gw?.close();
    await sim?.close();
  });

  it.each([true, false])('stream %s: the prompt tokens at the model price, not nothing', async (stream) => {
    const spentBefore = await gw.gateway.storage.ledger.spent({ tenantId: gw.tenantId }, 0, Date.now() + 60_000);
    const ac = new AbortController();
    const content = 'Summarize the history of the printing press in detail. '.repeat(20);
    const pending = fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { ...auth(gw.apiKey), 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'sim-slow', stream, messages: [{ role: 'user', content }] }),
      signal: ac.signal,
    }).catch((err: unknown) => err);
    await vi.waitFor(() => expect(sim.engine.stats().inFlight).toBe(1), { timeout: 10_000, interval: 5 });
    ac.abort();
    expect(await pending).toBeInstanceOf(Error);
    await vi.waitFor(() => expect(sim.engine.stats().inFlight).toBe(0), { timeout: 10_000, interval: 5 });
    await gw.settled();
    const spent = (await gw.gateway.storage.ledger.spent({ tenantId: gw.tenantId }, 0, Date.now() + 60_000)) - spentBefore;
    // At least the prompt's ~220 tokens at $5 per million.
    expect(spent).toBeGreaterThanOrEqual(200 * 5 * 1e6);
  });

  it('a client that leaves mid-stream is billed every billable part of the prompt (its 30,000-token tool schema too), not the messages alone', async () => {
    const spentBefore = await gw.gateway.storage.ledger.spent({ tenantId: gw.tenantId }, 0, Date.now() + 60_000);
    const ac = new AbortController();
    const description = 'Looks up an order by its number and returns its state and lines. '.repeat(2_000); // ~30k tokens
    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { ...auth(gw.apiKey), 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'sim-drip', stream: true, messages: [{ role: 'user', content: 'Where is my order?' }], tools: [{ type: 'function', function: { name: 'lookup', description } }] }),
      signal: ac.signal,
    });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    await reader.read(); // the first chunk, then the client leaves
    ac.abort();
    await vi.waitFor(() => expect(sim.engine.stats().inFlight).toBe(0), { timeout: 10_000, interval: 5 });
    await gw.settled();
    const spent = (await gw.gateway.storage.ledger.spent({ tenantId: gw.tenantId }, 0, Date.now() + 60_000)) - spentBefore;
    // ~30,000 prompt tokens at $5 per million: at least $0.12 (pre-fix: the messages' few tokens).
    expect(spent).toBeGreaterThanOrEqual(24_000 * 5 * 1e6);
  });
});

describe('an anonymous client cannot make the gateway read a body', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway();
  });
  afterAll(async () => {
    await gw?.close();
  });

  /** Starts a POST announcing `total` bytes, sends only the first 64 KB; resolves with the answer. */
  function partialPost(path: string, headers: Record<string, string>, total: number): { answer: Promise<{ status: number; body: string; connection: string | undefined }>; abort(): void } {
    const req = http.request(`${gw.url}${path}`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json', 'content-length': String(total) } });
    req.on('error', () => undefined);
    const answer = new Promise<{ status: number; body: string; connection: string | undefined }>((resolve) => {
      req.on('response', (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, connection: res.headers.connection }));
      });
    });
    req.write(`{"model":"sim-small","messages":[{"role":"user","content":"${'a'.repeat(64 * 1024)}`);
    return { answer, abort: () => req.destroy() };
  }

  it.each(['/nope', '//v1/chat/completions', '/V1/chat/completions', '/v1/unknown'])('POST %s (no such route): 404 while the body is still coming, connection closed', async (path) => {
    const p = partialPost(path, auth(gw.apiKey), 3 * 1024 * 1024);
    const res = await p.answer;
    expect(res.status).toBe(404);
    expect(res.connection).toBe('close');
    p.abort();
  });

  it('POST /admin/v1/tenants without a valid key: 401 while the body is still coming', async () => {
    const p = partialPost('/admin/v1/tenants', {}, 3 * 1024 * 1024);
    expect((await p.answer).status).toBe(401);
    p.abort();
  });

  it.each(['/v1/chat/completions', '/v1/embeddings', '/v1/jobs', '/v1/batches', '/v1/feedback'])('POST %s without a valid key: 401 while the body is still coming, connection closed', async (path) => {
    for (const headers of [{}, auth('tg-not-a-key')]) {
      const p = partialPost(path, headers, 3 * 1024 * 1024);
      const res = await p.answer; // the client never sends the rest: only an answer before the body ends it
      expect(res.status).toBe(401);
      expect(res.connection).toBe('close');
      p.abort();
    }
  });
});

async function adminKey(gw: TestGateway, tier: string): Promise<unknown> {
  const res = await fetch(`${gw.url}/admin/v1/keys`, {
    method: 'POST',
    headers: { ...auth(gw.adminKey), 'content-type': 'application/json' },
    body: JSON.stringify({ tenant_id: gw.tenantId, tier }),
  });
  return ((await res.json()) as { key: string }).key;
}
