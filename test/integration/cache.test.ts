/**
 * The cache through HTTP, embedded mode: exact hits (JSON and replayed streams), directives,
 * TTL, metering of hits, tenant isolation, semantic hits and the false-hit guard, single flight,
 * invalidation, feedback, and the last-resort stale answer.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { type Server, createServer, request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { cacheIdentity } from '../../src/cache/key.js';
import type { ChatCompletionRequest } from '../../src/providers/types.js';
import type { SimServer } from '../../src/providers/simulated/server.js';
import { FAST_MODELS, type TestGateway, auth, httpSimConfig, postJson, postStream, startGateway, startSim } from '../helpers/gateway.js';

/**
 * An HTTP proxy in front of a simulator that holds the requests it gets until told what to do with
 * them: forward them (`release()`), or answer them with an error status (`fail(status)`). Single
 * flight's waiters are then known to have joined before the upstream answer exists.
 */
interface Gate {
  url: string;
  /** Requests received so far. */
  readonly arrived: number;
  release(): void;
  fail(status: number): void;
  close(): Promise<void>;
}

/** `target`: the simulator's base URL (its path is kept from each request's). */
async function startGate(target: string): Promise<Gate> {
  let decide!: (action: 'forward' | number) => void;
  let decided = new Promise<'forward' | number>((resolve) => (decide = resolve));
  let arrived = 0;
  const server: Server = createServer((req, res) => {
    arrived++;
    void decided.then((action) => {
      if (action !== 'forward') {
        res.writeHead(action, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: 'gate says no', type: 'server_error' } }));
        return;
      }
      const up = httpRequest(new URL(req.url ?? '/', target), { method: req.method, headers: req.headers }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      });
      up.on('error', () => res.destroy());
      res.on('close', () => up.destroy());
      req.pipe(up);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const reset = (action: 'forward' | number) => {
    decide(action);
    decided = new Promise((resolve) => (decide = resolve)); // the next requests are held again
  };
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}/v1`, // like the simulator's
    get arrived() {
      return arrived;
    },
    release: () => reset('forward'),
    fail: (status) => reset(status),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

const ask = (content: string, extra: Record<string, unknown> = {}) => ({
  model: 'chat',
  temperature: 0,
  messages: [{ role: 'user', content }],
  ...extra,
});

describe('cache (embedded)', () => {
  /** The exact cache's clock (its TTLs): moved by the TTL test instead of waiting. */
  const clock = { t: 1_000_000 };
  let sim: SimServer;
  let slowSim: SimServer;
  let gate: Gate;
  let gw: TestGateway;
  let chat: string;

  beforeAll(async () => {
    sim = await startSim();
    slowSim = await startSim();
    gate = await startGate(slowSim.url); // the 'slow' route's upstream answers only when the test says so
    gw = await startGateway(
      httpSimConfig(
        { up: sim, slowup: { url: gate.url } as SimServer },
        {
          slow: { deployments: [{ provider: 'slowup', model: 'sim-small' }], price: { input: 0.15, output: 0.6 } },
          chat: { deployments: [{ provider: 'up', model: 'sim-small' }], price: { input: 0.15, output: 0.6 } },
          short: { deployments: [{ provider: 'up', model: 'sim-small' }], price: { input: 0.15, output: 0.6 }, cache: { ttlMs: 150 } },
          fragile: {
            deployments: [{ provider: 'up', model: 'sim-small' }],
            price: { input: 0.15, output: 0.6 },
            cache: { staleFallback: true },
          },
        },
        { resilience: { retry: { maxRetries: 0, baseDelayMs: 1, maxDelayMs: 2 } } },
      ),
      { cacheClock: () => clock.t },
    );
    chat = `${gw.url}/v1/chat/completions`;
  });
  afterAll(async () => {
    await gw.close();
    await sim.close();
    await gate.close();
    await slowSim.close();
  });
  beforeEach(() => {
    sim.engine.reset();
    slowSim.engine.reset();
  });

  const calls = () => sim.engine.stats().total;
  const admin = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${gw.url}/admin/v1${path}`, {
      method,
      headers: { ...auth(gw.adminKey), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: res.status, body: (await res.json()) as any };
  };
  const newTenantKey = async (): Promise<string> => {
    const t = await admin('POST', '/tenants', { name: `t-${Math.random().toString(36).slice(2)}` });
    const k = await admin('POST', '/keys', { tenant_id: t.body.id, name: 'k' });
    return k.body.secret ?? k.body.key;
  };

  it('serves the second identical deterministic request from the exact cache, once upstream', async () => {
    const body = ask('What is the capital of Austria, exactly?');
    const first = await postJson(chat, body, auth(gw.apiKey));
    expect(first.status).toBe(200);
    expect(first.headers.get('x-tollgate-cache')).toBe('miss');
    const second = await postJson(chat, body, auth(gw.apiKey));
    expect(second.status).toBe(200);
    expect(second.headers.get('x-tollgate-cache')).toBe('hit');
    expect(second.body.choices).toEqual(first.body.choices);
    expect(second.body.usage).toEqual(first.body.usage);
    expect(calls()).toBe(1);
    expect(Number(second.headers.get('x-tollgate-cost-usd'))).toBe(0);
  });

  it('replays a cached answer as a byte-valid SSE stream, with usage when asked', async () => {
    const body = ask('Name three rivers in France, please.');
    const first = await postJson(chat, body, auth(gw.apiKey));
    const stream = await postStream(chat, { ...body, stream: true, stream_options: { include_usage: true } }, auth(gw.apiKey));
    expect(stream.status).toBe(200);
    expect(stream.headers.get('content-type')).toContain('text/event-stream');
    expect(stream.headers.get('x-tollgate-cache')).toBe('hit');
    expect(stream.sawDone).toBe(true);
    expect(stream.raw.endsWith('data: [DONE]\n\n')).toBe(true);
    for (const block of stream.raw.split('\n\n').filter(Boolean)) expect(block.startsWith('data: ')).toBe(true);
    const text = stream.events.flatMap((e) => e.choices.map((c: any) => c.delta.content ?? '')).join('');
    expect(text).toBe(first.body.choices[0].message.content);
    expect(stream.events.every((e) => e.object === 'chat.completion.chunk')).toBe(true);
    expect(stream.events.at(-1).usage).toEqual(first.body.usage);
    expect(stream.events.at(-2).choices[0].finish_reason).toBe(first.body.choices[0].finish_reason);
    expect(calls()).toBe(1);
  });

  it('caches a streamed answer and serves it to a JSON request', async () => {
    const body = ask('Describe a sunrise in one line.');
    const stream = await postStream(chat, { ...body, stream: true }, auth(gw.apiKey));
    expect(stream.headers.get('x-tollgate-cache')).toBe('miss');
    const text = stream.events.flatMap((e) => e.choices.map((c: any) => c.delta.content ?? '')).join('');
    // A stream's answer is stored once its last chunk is read, in the background: wait for the write.
    await gw.settled();
    await gw.gateway.cache.idle();
    const json = await postJson(chat, body, auth(gw.apiKey));
    expect(json.headers.get('x-tollgate-cache')).toBe('hit');
    expect(json.body.choices[0].message.content).toBe(text);
    expect(json.body.usage.completion_tokens).toBeGreaterThan(0);
    expect(calls()).toBe(1);
  });

  it('does not cache non-deterministic requests unless forced; skip and refresh work', async () => {
    const body = ask('Write a haiku about caching.', { temperature: 0.9 });
    const a = await postJson(chat, body, auth(gw.apiKey));
    const b = await postJson(chat, body, auth(gw.apiKey));
    expect([a.headers.get('x-tollgate-cache'), b.headers.get('x-tollgate-cache')]).toEqual(['bypass', 'bypass']);
    expect(calls()).toBe(2);
    const f1 = await postJson(chat, body, { ...auth(gw.apiKey), 'x-tollgate-cache': 'force' });
    const f2 = await postJson(chat, body, { ...auth(gw.apiKey), 'x-tollgate-cache': 'force' });
    expect([f1.headers.get('x-tollgate-cache'), f2.headers.get('x-tollgate-cache')]).toEqual(['miss', 'hit']);
    expect(calls()).toBe(3);
    const skip = await postJson(chat, body, { ...auth(gw.apiKey), 'x-tollgate-cache': 'skip' });
    expect(skip.headers.get('x-tollgate-cache')).toBe('bypass');
    const refresh = await postJson(chat, body, { ...auth(gw.apiKey), 'x-tollgate-cache': 'refresh' });
    expect(refresh.headers.get('x-tollgate-cache')).toBe('miss');
    expect(calls()).toBe(5);
    const bad = await postJson(chat, body, { ...auth(gw.apiKey), 'x-tollgate-cache': 'always' });
    expect(bad.status).toBe(400);
    expect(bad.body.error.param).toBe('x-tollgate-cache');
  });

  it('expires entries after the route TTL', async () => {
    // The semantic entry's expiry is judged by Date.now(), the exact one by the cache's clock: both moved.
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      const body = { ...ask('How tall is Mont Blanc?'), model: 'short' };
      await postJson(chat, body, auth(gw.apiKey));
      await gw.gateway.cache.idle();
      clock.t += 149;
      vi.setSystemTime(Date.now() + 149);
      expect((await postJson(chat, body, auth(gw.apiKey))).headers.get('x-tollgate-cache')).toBe('hit'); // 149 ms: still there
      await gw.settled();
      await gw.gateway.cache.idle();
      clock.t += 51;
      vi.setSystemTime(Date.now() + 51);
      expect((await postJson(chat, body, auth(gw.apiKey))).headers.get('x-tollgate-cache')).toBe('miss'); // 200 ms: gone
      expect(calls()).toBe(2);
    } finally {
      vi.useRealTimers();
    }
  });

  it('meters a hit: the tokens it would have billed, zero cost, the cost it saved', async () => {
    const body = ask('Give me a one-line definition of entropy.');
    const first = await postJson(chat, body, auth(gw.apiKey));
    const hit = await postJson(chat, body, auth(gw.apiKey));
    await gw.settled(); // both settled, their events in the Ledger
    const ledger = gw.gateway.storage.ledger;
    const [e1, e2] = await Promise.all([first, hit].map((r) => ledger.get(r.headers.get('x-request-id') as string)));
    expect(e1?.cache).toBe('miss');
    expect(e2?.cache).toBe('hit');
    expect(e2?.costPico).toBe(0);
    expect(e2?.savedPico).toBe(e1?.costPico);
    expect(e2?.promptTokens).toBe(e1?.promptTokens);
    expect(e2?.completionTokens).toBe(e1?.completionTokens);
    expect(e2?.servedModel).toBe('chat');
  });

  it('never serves one tenant an answer cached for another', async () => {
    const [otherKey, thirdKey] = [await newTenantKey(), await newTenantKey()];
    const body = ask('What is our internal escalation policy?');
    await postJson(chat, body, auth(gw.apiKey));
    const other = await postJson(chat, body, auth(otherKey as string));
    expect(other.headers.get('x-tollgate-cache')).toBe('miss');
    const paraphrase = await postJson(chat, ask('What is our internal policy for escalation?'), auth(thirdKey as string));
    expect(paraphrase.headers.get('x-tollgate-cache')).toBe('miss');
    expect(calls()).toBe(3);
  });

  it('property: over random requests from three tenants, a hit only ever follows the same tenant asking first', async () => {
    const keys = [gw.apiKey, await newTenantKey(), await newTenantKey()];
    const questions = [
      'How do I reset my password?',
      'What are your opening hours on Sunday?',
      'Can I pay by bank transfer?',
      'Where is my parcel right now?',
      'Which plan includes priority support?',
      'How do I delete my account permanently?',
    ];
    let seed = 42;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const seen = new Set<string>();
    for (let i = 0; i < 60; i++) {
      const t = rand(keys.length);
      const q = rand(questions.length);
      const res = await postJson(chat, ask(`${questions[q]} (property run)`), auth(keys[t] as string));
      const outcome = res.headers.get('x-tollgate-cache');
      const asked = seen.has(`${t}:${q}`);
      expect(outcome, `request ${i}: tenant ${t}, question ${q}`).toBe(asked ? 'hit' : 'miss');
      seen.add(`${t}:${q}`);
    }
  });

  it('answers a paraphrase from the semantic cache, with its similarity', async () => {
    // The default decision (src/cache/decision.ts) favors precision: a paraphrase that keeps the
    // wording is reused; a heavier rewording ("reset the password of my account") scores below
    // the default threshold (decision.test.ts).
    await postJson(chat, ask('How can I reset my account password?'), auth(gw.apiKey));
    const res = await postJson(chat, ask('How do I reset my account password?'), auth(gw.apiKey));
    expect(res.headers.get('x-tollgate-cache')).toBe('semantic');
    const similarity = Number(res.headers.get('x-tollgate-similarity'));
    expect(similarity).toBeGreaterThan(0.5);
    expect(similarity).toBeLessThanOrEqual(1);
    expect(calls()).toBe(1);
  });

  it('the guard refuses a near question whose numbers differ', async () => {
    await postJson(chat, ask('What is the refund policy for orders over $100?'), auth(gw.apiKey));
    const res = await postJson(chat, ask('What is the refund policy for orders over $1000?'), auth(gw.apiKey));
    expect(res.headers.get('x-tollgate-cache')).toBe('miss');
    expect(calls()).toBe(2);
  });

  it('different system prompts never share answers', async () => {
    const q = 'Summarise the return policy in one sentence.';
    const withSystem = (system: string) => ({ ...ask(q), messages: [{ role: 'system', content: system }, { role: 'user', content: q }] });
    await postJson(chat, withSystem('You are a pirate.'), auth(gw.apiKey));
    const res = await postJson(chat, withSystem('You are a lawyer.'), auth(gw.apiKey));
    expect(res.headers.get('x-tollgate-cache')).toBe('miss');
    expect(calls()).toBe(2);
  });

  it('a feature flag can turn the cache off for a route', async () => {
    const body = ask('Is the cache on for this route?');
    const created = await admin('POST', '/flags', { name: 'no-cache', effect: { route: 'chat', cache_mode: 'off' } });
    expect(created.status).toBe(201);
    try {
      const a = await postJson(chat, body, auth(gw.apiKey));
      const b = await postJson(chat, body, auth(gw.apiKey));
      expect([a.headers.get('x-tollgate-cache'), b.headers.get('x-tollgate-cache')]).toEqual(['bypass', 'bypass']);
      expect(calls()).toBe(2);
    } finally {
      await admin('DELETE', '/flags/no-cache');
    }
  });

  it('invalidates by tenant through the admin API', async () => {
    const body = ask('What is the boiling point of water at sea level?');
    await postJson(chat, body, auth(gw.apiKey));
    const none = await admin('POST', '/cache/invalidate', {});
    expect(none.status).toBe(400);
    const res = await admin('POST', '/cache/invalidate', { tenant_id: gw.tenantId });
    expect(res.status).toBe(200);
    expect(res.body.exact_removed).toBeGreaterThan(0);
    expect((await postJson(chat, body, auth(gw.apiKey))).headers.get('x-tollgate-cache')).toBe('miss');
    const stats = await admin('GET', '/cache');
    expect(stats.body.exact_entries).toBeGreaterThan(0);
  });

  it('a bad feedback on a hit removes the entry', async () => {
    const body = ask('Translate "good morning" into Italian.');
    await postJson(chat, body, auth(gw.apiKey));
    const hit = await postJson(chat, body, auth(gw.apiKey));
    expect(hit.headers.get('x-tollgate-cache')).toBe('hit');
    await gw.settled(); // remembered in settle...
    await gw.gateway.cache.idle(); // ...in the background
    const fb = await postJson(`${gw.url}/v1/feedback`, { request_id: hit.headers.get('x-request-id'), rating: 'bad' }, auth(gw.apiKey));
    expect(fb.status).toBe(200);
    expect(fb.body.cache).toEqual({ outcome: 'hit', action: 'removed' });
    expect((await postJson(chat, body, auth(gw.apiKey))).headers.get('x-tollgate-cache')).toBe('miss');
    const unknown = await postJson(`${gw.url}/v1/feedback`, { request_id: 'req_nope', rating: 'good' }, auth(gw.apiKey));
    expect(unknown.status).toBe(200);
    expect(unknown.body.cache).toBeNull();
    const invalid = await postJson(`${gw.url}/v1/feedback`, { request_id: 'x', rating: 'meh' }, auth(gw.apiKey));
    expect(invalid.status).toBe(400);
    expect(invalid.body.error.message).toContain('rating');
  });

  /** The flight of `body` on the 'slow' route, once the request leading it has started it. */
  const flightOf = (body: object) => gw.gateway.cache.flights.get(cacheIdentity(gw.tenantId, 'slow', body as ChatCompletionRequest, undefined).exactKey);

  it('single flight: 100 concurrent identical requests, JSON and streams, make one upstream call', async () => {
    const body = { ...ask('Explain single flight in one line.'), model: 'slow' };
    const pending = Promise.all(
      Array.from({ length: 100 }, (_, i) => (i % 2 === 0 ? postJson(chat, body, auth(gw.apiKey)) : postStream(chat, { ...body, stream: true }, auth(gw.apiKey)))),
    );
    // The upstream call is held until it has arrived and the 99 others have joined its flight.
    await vi.waitFor(
      () => {
        expect(gate.arrived).toBe(1);
        expect(flightOf(body)?.followers).toBe(99);
      },
      { timeout: 10_000, interval: 5 },
    );
    gate.release();
    const results = await pending;
    expect(results.map((r) => r.status)).toEqual(Array(100).fill(200));
    expect(slowSim.engine.stats().total).toBe(1);
    const outcomes = results.map((r) => r.headers.get('x-tollgate-cache'));
    expect(outcomes.filter((o) => o === 'miss')).toHaveLength(1);
    expect(outcomes.filter((o) => o === 'coalesced')).toHaveLength(99);
    const texts = results.map((r: any) => ('events' in r ? r.events.flatMap((e: any) => e.choices.map((c: any) => c.delta.content ?? '')).join('') : r.body.choices[0].message.content));
    expect(new Set(texts).size).toBe(1);
    await gw.settled();
    const event = await gw.gateway.storage.ledger.get(results[1]?.headers.get('x-request-id') as string);
    expect(event?.costPico).toBe(0);
  });

  it('single flight: an upstream failure reaches every waiter', async () => {
    const body = { ...ask('This one will fail upstream.'), model: 'slow' };
    const before = gate.arrived;
    const pending = Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? postJson(chat, body, auth(gw.apiKey)) : postStream(chat, { ...body, stream: true }, auth(gw.apiKey)))));
    await vi.waitFor(
      () => {
        expect(gate.arrived - before).toBe(1);
        expect(flightOf(body)?.followers).toBe(19);
      },
      { timeout: 10_000, interval: 5 },
    );
    gate.fail(503); // the one upstream call fails once every waiter has joined
    const results = await pending;
    expect(gate.arrived - before).toBe(1);
    expect(results.map((r) => r.status)).toEqual(Array(20).fill(503));
  });

  it('last resort: answers from the cache, marked stale, when every deployment fails', async () => {
    const body = { ...ask('What are the support hours on weekdays?'), model: 'fragile' };
    const fresh = await postJson(chat, body, auth(gw.apiKey));
    expect(fresh.status).toBe(200);
    sim.engine.script([{ kind: 'error', status: 503 }]);
    // refresh: no lookup, so the fresh call is made, fails, and the fallback answers.
    const stale = await postJson(chat, { ...body, messages: [{ role: 'user', content: 'What are the support hours on weekdays, please?' }] }, { ...auth(gw.apiKey), 'x-tollgate-cache': 'refresh' });
    expect(stale.status).toBe(200);
    expect(stale.headers.get('x-tollgate-cache')).toBe('stale');
    expect(stale.body.choices[0].message.content).toBe(fresh.body.choices[0].message.content);
    sim.engine.script([{ kind: 'error', status: 503 }]);
    const none = await postJson(chat, { ...body, messages: [{ role: 'user', content: 'Completely unrelated: who painted the Mona Lisa?' }] }, auth(gw.apiKey));
    expect(none.status).toBe(503);
  });
});

describe('semantic cache persistence', () => {
  it('rebuilds the index from the store at start: a paraphrase hits after a restart', async () => {
    const sim = await startSim();
    const dir = mkdtempSync(join(tmpdir(), 'tg-cache-restart-'));
    const raw = httpSimConfig({ up: sim }, { chat: { deployments: [{ provider: 'up', model: 'sim-small' }] } }, { storage: { kind: 'embedded', dir } });
    const first = await startGateway(raw);
    try {
      const stored = await postJson(`${first.url}/v1/chat/completions`, ask('How long does shipping to Canada take?'), auth(first.apiKey));
      expect(stored.headers.get('x-tollgate-cache')).toBe('miss');
      await first.settled();
      await first.gateway.cache.idle(); // the semantic entry is in the store
      await first.gateway.close();
      const second = await startGateway({ ...raw, auth: { bootstrap: false } });
      try {
        expect(await second.gateway.cache.semantic?.loaded).toBeGreaterThanOrEqual(1);
        const res = await postJson(`${second.url}/v1/chat/completions`, ask('how long does shipping to Canada take'), auth(first.apiKey));
        expect(res.headers.get('x-tollgate-cache')).toBe('semantic');
        expect(res.body.choices[0].message.content).toBe(stored.body.choices[0].message.content);
        expect(sim.engine.stats().total).toBe(1);
      } finally {
        await second.close();
      }
    } finally {
      await sim.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('cache hits and rate limits', () => {
  it('a hit counts one request against the limits and no tokens', async () => {
    const sim = await startSim();
    // The rate limiter's clock (Date.now) stands still from here: nothing refills, so what each
    // request takes shows exactly in the headers.
    vi.useFakeTimers({ toFake: ['Date'] });
    const limits = { key: { requestsPerMinute: 10, tokensPerMinute: 600 } };
    const gw = await startGateway({
      ...httpSimConfig({ up: sim }, { chat: { deployments: [{ provider: 'up', model: 'sim-small' }] } }),
      tiers: { free: { limits }, standard: { limits }, premium: { limits } },
    });
    try {
      const body = { ...ask('How many tokens does a hit use?'), max_tokens: 50 };
      const settle = () => gw.settled(); // each request's reservation reconciled
      const miss = await postJson(`${gw.url}/v1/chat/completions`, body, auth(gw.apiKey));
      expect(miss.headers.get('x-tollgate-cache')).toBe('miss');
      await settle();
      const a = await postJson(`${gw.url}/v1/chat/completions`, body, auth(gw.apiKey));
      await settle();
      const b = await postJson(`${gw.url}/v1/chat/completions`, body, auth(gw.apiKey));
      expect([a.headers.get('x-tollgate-cache'), b.headers.get('x-tollgate-cache')]).toEqual(['hit', 'hit']);
      const num = (r: typeof a, h: string) => Number(r.headers.get(`x-ratelimit-remaining-${h}`));
      // One request each...
      expect(num(b, 'requests')).toBe(num(a, 'requests') - 1);
      // ...and no tokens: hit a's reservation came back before hit b took its own (the same).
      const used = miss.body.usage.total_tokens as number;
      expect(used).toBeGreaterThan(5);
      expect(num(b, 'tokens')).toBe(num(a, 'tokens'));
    } finally {
      await gw.close();
      await sim.close();
      vi.useRealTimers();
    }
  });
});
