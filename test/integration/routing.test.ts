/**
 * Tiered routes through HTTP: the classifier's tier, rules, escalation to the next tier, a tier
 * with open breakers skipped, and what the ledger records.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { SimServer } from '../../src/providers/simulated/server.js';
import { type TestGateway, auth, httpSimConfig, postJson, postStream, startGateway, startSim } from '../helpers/gateway.js';

describe('tiered routes', () => {
  let small: SimServer;
  let medium: SimServer;
  let large: SimServer;
  let gw: TestGateway;
  let chat: string;

  beforeAll(async () => {
    // Retry-After windows and breaker cool-downs are read from Date.now(): a fake Date (real timers
    // and sockets) that only the tests move.
    vi.useFakeTimers({ toFake: ['Date'] });
    [small, medium, large] = [await startSim(), await startSim(), await startSim()];
    gw = await startGateway(
      httpSimConfig(
        { ps: small, pm: medium, pl: large },
        {
          'm-small': { deployments: [{ provider: 'ps', model: 'sim-small' }], price: { input: 0.15, output: 0.6 } },
          'm-medium': { deployments: [{ provider: 'pm', model: 'sim-small' }], price: { input: 1, output: 4 } },
          'm-large': { deployments: [{ provider: 'pl', model: 'sim-large' }], price: { input: 5, output: 15 } },
        },
        {
          routes: {
            auto: {
              aliases: ['smart'],
              tiers: { small: ['m-small'], medium: ['m-medium'], large: ['m-large'] },
              rules: [
                { when: { tenantTier: 'premium' }, tier: 'large' },
                { when: { hasTools: true }, minTier: 'medium' },
              ],
              escalate: { on: ['length', 'empty'], maxSteps: 1 },
            },
          },
          resilience: { retry: { maxRetries: 0, baseDelayMs: 1, maxDelayMs: 2 }, breaker: { failureThreshold: 2, cooldownMs: 60_000 } },
          cache: { enabled: false },
        },
      ),
    );
    chat = `${gw.url}/v1/chat/completions`;
  });
  afterAll(async () => {
    await gw.close();
    await Promise.all([small.close(), medium.close(), large.close()]);
    vi.useRealTimers();
  });
  beforeEach(() => {
    for (const s of [small, medium, large]) s.engine.reset();
  });

  const easy = { model: 'auto', messages: [{ role: 'user', content: 'Hi! What is the capital of France?' }] };
  const hard = {
    model: 'auto',
    messages: [
      {
        role: 'user',
        content:
          'Design a distributed rate limiter for a multi-region API gateway. Compare token bucket and sliding window approaches, analyze the consistency trade-offs step by step, prove that your design never admits more than the limit plus one burst per region, and give the Redis Lua script with its complexity analysis:\n```lua\nlocal tokens = redis.call("GET", KEYS[1])\n```',
      },
    ],
  };

  it('sends an easy request to the small tier and a hard one to the large tier, and says so', async () => {
    const e = await postJson(chat, easy, auth(gw.apiKey));
    expect(e.status).toBe(200);
    expect(e.headers.get('x-tollgate-tier')).toBe('small');
    expect(small.engine.stats().total).toBe(1);
    const h = await postJson(chat, hard, auth(gw.apiKey));
    expect(h.headers.get('x-tollgate-tier')).toBe('large');
    expect(h.headers.get('x-tollgate-model')).toBe('sim-large');
    expect(large.engine.stats().total).toBe(1);
    const alias = await postStream(chat, { ...easy, model: 'smart', stream: true }, auth(gw.apiKey));
    expect(alias.headers.get('x-tollgate-tier')).toBe('small');
    expect(alias.sawDone).toBe(true);
  });

  it('records the tier and the model that served in the ledger, priced with that model', async () => {
    const res = await postJson(chat, hard, auth(gw.apiKey));
    await gw.gateway.ledger.flush();
    const event = await gw.gateway.storage.ledger.get(res.headers.get('x-request-id') as string);
    expect(event).toMatchObject({ tier: 'large', servedModel: 'm-large', requestedModel: 'auto' });
    const u = res.body.usage;
    expect(event!.costPico).toBe(u.prompt_tokens * 5_000_000 + u.completion_tokens * 15_000_000);
  });

  it('applies rules: tools need at least medium', async () => {
    const withTools = { ...easy, tools: [{ type: 'function', function: { name: 'lookup', parameters: { type: 'object' } } }] };
    const res = await postJson(chat, withTools, auth(gw.apiKey));
    expect(res.headers.get('x-tollgate-tier')).toBe('medium');
  });

  it("applies rules: a premium tenant's requests go to the large tier", async () => {
    const admin = async (path: string, body: unknown) =>
      (await fetch(`${gw.url}/admin/v1${path}`, { method: 'POST', headers: { ...auth(gw.adminKey), 'content-type': 'application/json' }, body: JSON.stringify(body) })).json() as Promise<any>;
    const tenant = await admin('/tenants', { name: 'Premium Co', tier: 'premium' });
    const key = await admin('/keys', { tenant_id: tenant.id, name: 'p' });
    const res = await postJson(chat, easy, auth(key.key));
    expect(res.status).toBe(200);
    expect(res.headers.get('x-tollgate-tier')).toBe('large');
  });

  it('escalates to the next tier when the answer is cut off, and bills both answers', async () => {
    const res = await postJson(chat, { ...easy, max_tokens: 1 }, auth(gw.apiKey));
    expect(res.status).toBe(200);
    expect(res.headers.get('x-tollgate-tier')).toBe('medium');
    expect(res.headers.get('x-tollgate-escalated')).toBe('length');
    expect(small.engine.stats().total).toBe(1);
    expect(medium.engine.stats().total).toBe(1);
    await gw.gateway.ledger.flush();
    const event = await gw.gateway.storage.ledger.get(res.headers.get('x-request-id') as string);
    const reported = small.engine.stats().reportedUsage;
    expect(event!.completionTokens).toBe(res.body.usage.completion_tokens + reported.completionTokens);
    expect(Number(res.headers.get('x-tollgate-cost-usd'))).toBeGreaterThan(0);
  });

  it('leaves a kill-switched model out: its tier is skipped', async () => {
    const post = await fetch(`${gw.url}/admin/v1/kill-switches`, {
      method: 'POST',
      headers: { ...auth(gw.adminKey), 'content-type': 'application/json' },
      body: JSON.stringify({ scope: 'model', target: 'm-small', reason: 'test' }),
    });
    const ks = (await post.json()) as { id: string };
    try {
      const res = await postJson(chat, easy, auth(gw.apiKey));
      expect(res.status).toBe(200);
      expect(res.headers.get('x-tollgate-tier')).toBe('medium');
      expect(small.engine.stats().total).toBe(0);
    } finally {
      await fetch(`${gw.url}/admin/v1/kill-switches/${ks.id}`, { method: 'DELETE', headers: auth(gw.adminKey) });
    }
  });

  it('skips a tier whose provider is rate limited (429 with Retry-After) for the next one up', async () => {
    small.engine.script([{ kind: 'error', status: 429, retryAfterSeconds: 1 }]);
    expect((await postJson(chat, easy, auth(gw.apiKey))).status).toBe(429);
    const res = await postJson(chat, easy, auth(gw.apiKey));
    expect(res.status).toBe(200);
    expect(res.headers.get('x-tollgate-tier')).toBe('medium');
    expect(small.engine.stats().total).toBe(1);
    vi.setSystemTime(Date.now() + 999); // still inside the 1 s window
    expect((await postJson(chat, easy, auth(gw.apiKey))).headers.get('x-tollgate-tier')).toBe('medium');
    vi.setSystemTime(Date.now() + 1); // the window ends: the small tier serves again
    expect((await postJson(chat, easy, auth(gw.apiKey))).headers.get('x-tollgate-tier')).toBe('small');
    expect(small.engine.stats().total).toBe(2);
  });

  it('skips a tier whose breakers are open for the next one up', async () => {
    small.engine.script([{ kind: 'error', status: 503 }, { kind: 'error', status: 503 }]);
    for (let i = 0; i < 2; i++) expect((await postJson(chat, easy, auth(gw.apiKey))).status).toBe(503);
    const res = await postJson(chat, easy, auth(gw.apiKey));
    expect(res.status).toBe(200);
    expect(res.headers.get('x-tollgate-tier')).toBe('medium');
    expect(small.engine.stats().total).toBe(2); // not tried again while its breaker is open
  });

  it('lists routes in /v1/models', async () => {
    const res = await fetch(`${gw.url}/v1/models`, { headers: auth(gw.apiKey) });
    const ids = ((await res.json()) as { data: Array<{ id: string }> }).data.map((m) => m.id);
    expect(ids).toContain('auto');
  });
});
