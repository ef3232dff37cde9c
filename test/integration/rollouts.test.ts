/**
 * Feature flags, A/B experiments and shadow traffic through the gateway: a flag switches a
 * route's model for its target at once, with an audit trail; experiment variants are sticky and
 * their results add up to the ledger; shadow calls never reach the user, stop at their budget,
 * and are reported.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { SimServer } from '../../src/providers/simulated/server.js';
import { type TestGateway, auth, httpSimConfig, postJson, startGateway, startSim } from '../helpers/gateway.js';

describe('flags, experiments and shadow traffic', () => {
  let small: SimServer;
  let large: SimServer;
  let candidate: SimServer;
  let gw: TestGateway;
  let chat: string;

  beforeAll(async () => {
    [small, large, candidate] = [await startSim(), await startSim(), await startSim()];
    gw = await startGateway(
      httpSimConfig(
        { ps: small, pl: large, pc: candidate },
        {
          'm-small': { deployments: [{ provider: 'ps', model: 'sim-small' }], price: { input: 0.15, output: 0.6 } },
          'm-large': { deployments: [{ provider: 'pl', model: 'sim-large' }], price: { input: 5, output: 15 } },
          'm-candidate': { deployments: [{ provider: 'pc', model: 'sim-small' }], price: { input: 1, output: 1 } },
          chat: { deployments: [{ provider: 'ps', model: 'sim-small' }], price: { input: 0.15, output: 0.6 } },
        },
        {
          routes: {
            auto: {
              tiers: { small: ['m-small'], large: ['m-large'] },
              classifier: 'none',
              shadow: { model: 'm-candidate', sampleRate: 1, dailyBudgetUsd: 0.0005 },
            },
          },
          experiments: {
            'sys-prompt': {
              route: 'chat',
              variants: [
                { name: 'control', weight: 1 },
                { name: 'terse', weight: 1, system: 'Answer in five words.', params: { temperature: 0.1 } },
              ],
            },
          },
          cache: { enabled: false },
          resilience: { retry: { maxRetries: 0, baseDelayMs: 1, maxDelayMs: 2 } },
        },
      ),
    );
    chat = `${gw.url}/v1/chat/completions`;
  });
  afterAll(async () => {
    await gw.close();
    await Promise.all([small.close(), large.close(), candidate.close()]);
  });
  beforeEach(() => {
    for (const s of [small, large, candidate]) s.engine.reset();
  });

  const admin = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${gw.url}/admin/v1${path}`, {
      method,
      headers: { ...auth(gw.adminKey), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: res.status, body: (await res.json()) as any };
  };
  const ask = (model: string, content: string, user?: string) => ({ model, messages: [{ role: 'user', content }], ...(user ? { user } : {}) });
  /**
   * Every request so far has settled (settle starts its shadow call), and every shadow call started
   * has ended: its pair and its usage event written.
   */
  const shadowsDone = async () => {
    await gw.settled();
    await vi.waitFor(async () => expect((await admin('GET', '/shadow')).body.stats.in_flight).toBe(0), { timeout: 10_000, interval: 5 });
    await gw.settled(); // the shadow calls' usage events, in the Ledger
  };

  it('a flag switches the route to another model for its target at once, and is audited', async () => {
    const before = await postJson(chat, ask('auto', 'Hello?'), auth(gw.apiKey));
    expect(before.headers.get('x-tollgate-model')).toBe('sim-small');
    const created = await admin('POST', '/flags', {
      name: 'large-for-demo',
      description: 'try the large model',
      targeting: { tenants: [gw.tenantId] },
      effect: { route: 'auto', model: 'm-large' },
    });
    expect(created.status).toBe(201);
    const after = await postJson(chat, ask('auto', 'Hello?'), auth(gw.apiKey));
    expect(after.headers.get('x-tollgate-model')).toBe('sim-large');
    const off = await admin('PATCH', '/flags/large-for-demo', { enabled: false });
    expect(off.status).toBe(200);
    expect((await postJson(chat, ask('auto', 'Hello?'), auth(gw.apiKey))).headers.get('x-tollgate-model')).toBe('sim-small');
    const audit = await admin('GET', '/flags/large-for-demo/audit');
    expect(audit.body.data.map((e: any) => e.action)).toEqual(['update', 'create']);
    expect(audit.body.data[0].actor).toMatch(/^key_/);
    expect(audit.body.data[0].before.enabled).toBe(true);
    expect(audit.body.data[0].after.enabled).toBe(false);
    const bad = await admin('POST', '/flags', { name: 'x', effect: { route: 'nope', model: 'm-large' } });
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.body)).toContain('route');
  });

  it("a kill switch on a model holds when a flag chooses it", async () => {
    const ks = await admin('POST', '/kill-switches', { scope: 'model', target: 'm-large', reason: 'outage' });
    const flag = await admin('POST', '/flags', { name: 'to-chat-large', effect: { route: 'auto', model: 'm-large' } });
    try {
      const res = await postJson(chat, ask('auto', 'Hello?'), auth(gw.apiKey));
      expect(res.status).toBe(503);
      expect(res.body.error.code).toBe('model_disabled');
      expect(large.engine.stats().total).toBe(0);
    } finally {
      await admin('DELETE', '/flags/to-chat-large');
      await admin('DELETE', `/kill-switches/${ks.body.id}`);
    }
    void flag;
  });

  it("a flag can replace a route's tier mapping for a share of users", async () => {
    const created = await admin('POST', '/flags', {
      name: 'small-tier-on-large',
      targeting: { percentage: 50 },
      effect: { route: 'auto', tiers: { small: ['m-large'] } },
    });
    expect(created.status).toBe(201);
    const models = new Map<string, string>();
    for (let u = 0; u < 40; u++) {
      const res = await postJson(chat, ask('auto', 'Hello?', `u${u}`), auth(gw.apiKey));
      expect(res.headers.get('x-tollgate-tier')).toBe('small');
      models.set(`u${u}`, res.headers.get('x-tollgate-model') as string);
    }
    const large = [...models.values()].filter((m) => m === 'sim-large').length;
    expect(large).toBeGreaterThan(8); // about half the users...
    expect(large).toBeLessThan(32);
    for (let u = 0; u < 40; u++) {
      // ...and the same ones every time (sticky).
      const res = await postJson(chat, ask('auto', 'Hello again?', `u${u}`), auth(gw.apiKey));
      expect(res.headers.get('x-tollgate-model')).toBe(models.get(`u${u}`));
    }
    expect((await admin('DELETE', '/flags/small-tier-on-large')).status).toBe(200);
  });

  it('experiment variants are sticky per user, and the results add up to the ledger', async () => {
    const seen = new Map<string, string>();
    const ids: string[] = [];
    for (let round = 0; round < 2; round++) {
      for (let u = 0; u < 30; u++) {
        const res = await postJson(chat, ask('chat', `Question ${u}`, `user-${u}`), auth(gw.apiKey));
        expect(res.status).toBe(200);
        const variant = res.headers.get('x-tollgate-experiment') as string;
        expect(variant).toMatch(/^sys-prompt:(control|terse)$/);
        if (round === 0) seen.set(`user-${u}`, variant);
        else expect(variant).toBe(seen.get(`user-${u}`));
        ids.push(res.headers.get('x-request-id') as string);
      }
    }
    // The terse variant's system prompt reached upstream.
    const bodies = small.engine.stats().recentRequests as Array<{ messages: Array<{ role: string; content: string }>; temperature?: number }>;
    const terse = bodies.filter((b) => b.messages[0]?.role === 'system');
    expect(terse.length).toBeGreaterThan(0);
    expect(terse.every((b) => b.messages[0]!.content === 'Answer in five words.' && b.temperature === 0.1)).toBe(true);
    const fb = await postJson(`${gw.url}/v1/feedback`, { request_id: ids[0], rating: 'good' }, auth(gw.apiKey));
    expect(fb.status).toBe(200);
    await gw.settled(); // every request's usage event is in the Ledger

    const results = await admin('GET', '/experiments/sys-prompt/results');
    expect(results.status).toBe(200);
    const variants = results.body.variants as Array<{ variant: string; requests: number; cost_per_request_usd: number }>;
    expect(variants.map((v) => v.variant).sort()).toEqual(['control', 'terse']);
    expect(variants.reduce((n, v) => n + v.requests, 0)).toBe(60);
    const usage = await admin('GET', '/usage?group_by=model');
    const chatRow = usage.body.data.find((r: any) => r.model === 'chat');
    expect(chatRow.requests).toBe(60);
    const feedbackCount = variants.reduce((n, v: any) => n + (v.feedback?.count ?? 0), 0);
    expect(feedbackCount).toBe(1);
    const unknown = await admin('GET', '/experiments/nope/results');
    expect(unknown.status).toBe(404);
  });

  it('shadow traffic: mirrored in the background, reported, capped by its budget, never seen by the user', async () => {
    // max_tokens bounds each shadow call's reservation (prompt + max output, priced) under the tiny budget.
    const capped = (content: string) => ({ ...ask('auto', content), max_tokens: 30 });
    const res = await postJson(chat, capped('Describe the ocean in a sentence.'), auth(gw.apiKey));
    expect(res.status).toBe(200);
    expect(res.headers.get('x-tollgate-model')).toBe('sim-small');
    await shadowsDone();
    expect(candidate.engine.stats().completed).toBe(1); // mirrored once, in the background
    // A failing candidate never reaches the user.
    candidate.engine.script([{ kind: 'error', status: 500 }]);
    const ok = await postJson(chat, capped('And the desert?'), auth(gw.apiKey));
    expect(ok.status).toBe(200);
    // The budget (0.0005 USD/day) stops the mirroring after a few calls.
    for (let i = 0; i < 40; i++) await postJson(chat, capped(`Tell me fact number ${i} about whales, with details.`), auth(gw.apiKey));
    // Pairs are written when each shadow call ends.
    await shadowsDone();
    const report = await admin('GET', '/shadow/auto');
    expect(report.status).toBe(200);
    const candidateReport = report.body.data[0];
    expect(candidateReport.shadow_model).toBe('m-candidate');
    const mirrored = candidate.engine.stats().total;
    expect(candidateReport.pairs).toBe(mirrored);
    expect(candidateReport.failures).toBe(1);
    expect(candidateReport.compared).toBe(mirrored - 1);
    // Same simulator model, same prompt: the answers agree.
    expect(candidateReport.agreement_rate).toBe(1);
    expect(mirrored).toBeGreaterThanOrEqual(2);
    expect(mirrored).toBeLessThan(42); // stopped by the shadow budget
    const spend = await admin('GET', '/usage?group_by=route');
    const shadowRow = spend.body.data.find((r: any) => r.route === 'shadow');
    expect(Number(shadowRow.cost_usd)).toBeLessThanOrEqual(0.0005 + 0.0005); // the cap, plus at most one reservation
  });
});
