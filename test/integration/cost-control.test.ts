import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RawConfig } from '../../src/config/schema.js';
import type { SimServer } from '../../src/providers/simulated/server.js';
import { type TestGateway, auth, hello, httpSimConfig, postJson, postStream, startGateway, startSim } from '../helpers/gateway.js';

const PICO = 1e12;
const picoOf = (usd: string | null) => Math.round(Number(usd ?? 0) * PICO);

async function adminPost(gw: TestGateway, path: string, body: unknown) {
  const res = await fetch(`${gw.url}/admin/v1${path}`, {
    method: 'POST',
    headers: { ...auth(gw.adminKey), 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return (await res.json()) as any;
}

describe('rate limits by requests and tokens', () => {
  let sim: SimServer;
  let gw: TestGateway;
  beforeAll(async () => {
    sim = await startSim();
    gw = await startGateway(
      httpSimConfig(
        { up: sim },
        { 'sim-small': { deployments: [{ provider: 'up' }], price: { input: 1, output: 2 } } },
        {
          tiers: {
            standard: { limits: { key: { requestsPerMinute: 3, tokensPerMinute: 1_000 } } },
            free: { limits: { user: { requestsPerMinute: 1 } } },
          },
        },
      ),
    );
  });
  afterAll(async () => {
    await gw.close();
    await sim.close();
  });

  it('answers with OpenAI x-ratelimit headers, then 429 with Retry-After past the request limit', async () => {
    const key = (await adminPost(gw, '/keys', { tenant_id: gw.tenantId })).key as string;
    const body = hello('sim-small', { max_tokens: 10 });
    const first = await postJson(`${gw.url}/v1/chat/completions`, body, auth(key));
    expect(first.status).toBe(200);
    expect(first.headers.get('x-ratelimit-limit-requests')).toBe('3');
    expect(first.headers.get('x-ratelimit-remaining-requests')).toBe('2');
    expect(first.headers.get('x-ratelimit-reset-requests')).toMatch(/^\d+(ms|s)$/);
    expect(first.headers.get('x-ratelimit-limit-tokens')).toBe('1000');
    expect(Number(first.headers.get('x-ratelimit-remaining-tokens'))).toBeLessThan(1000);
    await postJson(`${gw.url}/v1/chat/completions`, body, auth(key));
    await postJson(`${gw.url}/v1/chat/completions`, body, auth(key));
    const refused = await postJson(`${gw.url}/v1/chat/completions`, body, auth(key));
    expect(refused.status).toBe(429);
    expect(refused.body.error).toMatchObject({ type: 'rate_limit_error', code: 'rate_limit_exceeded' });
    expect(refused.body.error.message).toMatch(/requests per minute \(RPM\): limit 3/);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(refused.headers.get('x-ratelimit-remaining-requests')).toBe('0');
  });

  it('takes the estimate (prompt + max output) and gives back what was not used', async () => {
    const key = (await adminPost(gw, '/keys', { tenant_id: gw.tenantId })).key as string;
    const a = await postJson(`${gw.url}/v1/chat/completions`, hello('sim-small', { max_tokens: 500 }), auth(key));
    const afterFirst = Number(a.headers.get('x-ratelimit-remaining-tokens'));
    expect(afterFirst).toBeLessThanOrEqual(1000 - 500); // the estimate was taken up front
    await gw.settled(); // settle gives back 500 - actual
    const b = await postJson(`${gw.url}/v1/chat/completions`, hello('sim-small', { max_tokens: 1 }), auth(key));
    // Given back: 500 - a's completion (at most 24 tokens), less b's own estimate (its prompt + 1,
    // well under 100). Refill (1,000 a minute) could only add to it, never explain it: 400 tokens take 24 s.
    const given = 500 - a.body.usage.completion_tokens;
    expect(given).toBeGreaterThan(450);
    expect(Number(b.headers.get('x-ratelimit-remaining-tokens'))).toBeGreaterThan(afterFirst + given - 100);
  });

  it('refuses a request larger than the whole token limit, saying why', async () => {
    const key = (await adminPost(gw, '/keys', { tenant_id: gw.tenantId })).key as string;
    const res = await postJson(`${gw.url}/v1/chat/completions`, hello('sim-small', { max_tokens: 5_000 }), auth(key));
    expect(res.status).toBe(429);
    expect(res.body.error.message).toMatch(/Request too large .* limit 1000/);
  });

  it('limits each end user separately', async () => {
    const key = (await adminPost(gw, '/keys', { tenant_id: gw.tenantId, tier: 'free' })).key as string;
    const ask = (user: string) => postJson(`${gw.url}/v1/chat/completions`, hello('sim-small', { max_tokens: 10, user }), auth(key));
    expect((await ask('alice')).status).toBe(200);
    expect((await ask('alice')).status).toBe(429);
    expect((await ask('bob')).status).toBe(200);
  });
});

describe('budgets: reserve, then settle', () => {
  let sim: SimServer;
  const models: RawConfig['models'] = {
    // ~$0.005 to ~$0.01 a request: a $1.00 budget covers roughly a hundred.
    'sim-small': { deployments: [{ provider: 'up' }], price: { input: 100, output: 200 } },
  };
  beforeAll(async () => {
    sim = await startSim();
  });
  afterAll(() => sim.close());

  it('500 concurrent requests against a $1.00 budget: spend stays within it, every refusal is a clear 402', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tg-budget-'));
    const gw = await startGateway({
      ...httpSimConfig({ up: sim }, models, { tiers: { standard: { budgets: { tenant: { dailyUsd: 1 } } } } }),
      storage: { kind: 'embedded', dir },
    });
    try {
      const results = await Promise.all(
        Array.from({ length: 500 }, (_, i) => postJson(`${gw.url}/v1/chat/completions`, hello('sim-small', { max_tokens: 30, seed: i }), auth(gw.apiKey))),
      );
      const ok = results.filter((r) => r.status === 200);
      const refused = results.filter((r) => r.status !== 200);
      const spent = ok.reduce((n, r) => n + picoOf(r.headers.get('x-tollgate-cost-usd')), 0);
      expect(ok.length).toBeGreaterThan(50);
      expect(refused.length).toBeGreaterThan(0);
      expect(spent).toBeLessThanOrEqual(1 * PICO);
      for (const r of refused) {
        expect(r.status).toBe(402);
        expect(r.body.error).toMatchObject({ type: 'insufficient_quota', code: 'budget_exceeded' });
        expect(r.body.error.message).toMatch(/daily budget of tenant 'default' \(\$1\) does not cover this request.*resets at \d{4}-/);
      }
      // The ledger agrees with what the clients were told (once every request has settled).
      await gw.settled();
      expect(await gw.gateway.storage.ledger.spent({ tenantId: gw.tenantId }, 0, Date.now() + 1)).toBe(spent);
    } finally {
      await gw.close();
    }
  });

  it('after a restart, the budget counter is rebuilt from the ledger', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tg-budget-'));
    const config = { ...httpSimConfig({ up: sim }, models, { tiers: { standard: { budgets: { key: { dailyUsd: 0.02 } } } } }), storage: { kind: 'embedded' as const, dir } };
    const first = await startGateway(config);
    let key: string;
    try {
      key = (await adminPost(first, '/keys', { tenant_id: first.tenantId })).key;
      let status = 200;
      for (let i = 0; i < 20 && status === 200; i++) status = (await postJson(`${first.url}/v1/chat/completions`, hello('sim-small', { max_tokens: 30 }), auth(key))).status;
      expect(status).toBe(402);
    } finally {
      await first.gateway.close(); // keep the folder: same store for the second process
    }
    const { createGateway } = await import('../../src/main.js');
    const { buildConfig } = await import('../../src/config/loader.js');
    const { createLogger } = await import('../../src/observability/logger.js');
    const second = await createGateway(buildConfig({ ...config, server: { port: 0 } }), { logger: createLogger('silent') });
    try {
      const url = await second.listen();
      const res = await postJson(`${url}/v1/chat/completions`, hello('sim-small', { max_tokens: 30 }), auth(key));
      expect(res.status).toBe(402); // memory counters are gone, but the ledger remembers the spend
    } finally {
      await second.close();
    }
  });

  it('cuts off a stream that outgrows its reservation, and bills what was streamed', async () => {
    const gw = await startGateway({
      ...httpSimConfig({ up: sim }, models, { tiers: { standard: { budgets: { tenant: { monthlyUsd: 100 } } } } }),
      metering: { defaultMaxOutputTokens: 5, streamOverBudget: 'cutoff' },
    });
    try {
      const s = await postStream(`${gw.url}/v1/chat/completions`, hello('sim-small', { stream: true }), auth(gw.apiKey));
      expect(s.sawDone).toBe(false);
      const last = s.events.at(-1);
      expect(last.error.code).toBe('budget_exceeded');
      const streamed = s.events.filter((e) => e.choices?.[0]?.delta?.content).length;
      expect(streamed).toBe(5);
      await gw.settled();
      expect(await gw.gateway.storage.ledger.aggregate({ from: 0, to: Date.now() + 1, groupBy: [] })).toHaveLength(1);
      const row = (await gw.gateway.storage.ledger.aggregate({ from: 0, to: Date.now() + 1, groupBy: [] }))[0]!;
      expect(row.completionTokens).toBeGreaterThan(0);
      expect(row.completionTokens).toBeLessThanOrEqual(12);
      expect(row.costPico).toBeGreaterThan(0);
    } finally {
      await gw.close();
    }
  });
});
