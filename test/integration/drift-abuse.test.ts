import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildConfig } from '../../src/config/loader.js';
import type { RawConfig } from '../../src/config/schema.js';
import { createGateway } from '../../src/main.js';
import { createLogger } from '../../src/observability/logger.js';
import type { SimServer } from '../../src/providers/simulated/server.js';
import { type TestGateway, auth, httpSimConfig, postJson, startGateway, startSim } from '../helpers/gateway.js';

const LONG = Array.from({ length: 120 }, (_, i) => `word${i}`).join(' ');
const chat = (content: string, user?: string) => ({ model: 'sim-small', messages: [{ role: 'user', content }], max_tokens: 8, ...(user ? { user } : {}) });

async function adminGet(gw: TestGateway, path: string, key = gw.adminKey) {
  const res = await fetch(`${gw.url}${path}`, { headers: auth(key) });
  return { status: res.status, type: res.headers.get('content-type') ?? '', body: (await res.json()) as any };
}

/** Settle (and so the detectors) runs just after each response: read what they hold once it has run. */
async function afterSettle<T>(gw: TestGateway, read: () => Promise<T>): Promise<T> {
  await gw.settled();
  return read();
}

function gatewayConfig(sim: SimServer, extra: RawConfig): RawConfig {
  return httpSimConfig({ up: sim }, { 'sim-small': { deployments: [{ provider: 'up' }] } }, extra);
}

describe('abuse throttling through a real gateway', () => {
  let sim: SimServer;
  let gw: TestGateway;
  beforeAll(async () => {
    sim = await startSim();
    // The detectors' clock stands still: the throttle's Retry-After is exactly its duration.
    gw = await startGateway(gatewayConfig(sim, { abuse: { action: 'throttle', throttle: { durationSeconds: 120 }, longPrompts: { maxPromptTokens: 60 } } }), {
      signalsClock: () => Date.UTC(2030, 0, 1),
    });
  });
  afterAll(async () => {
    await gw.close();
    await sim.close();
  });

  it('flags a very long prompt, then refuses that end user with 429, Retry-After and the reason', async () => {
    const first = await postJson(`${gw.url}/v1/chat/completions`, chat(LONG, 'mallory'), auth(gw.apiKey));
    expect(first.status).toBe(200);
    const flags = await afterSettle(gw, () => adminGet(gw, '/admin/v1/abuse'));
    expect(flags.body).toMatchObject({ object: 'list', enabled: true, action: 'throttle' });
    expect(flags.body.data).toEqual([
      expect.objectContaining({ kind: 'long_prompt', subject: 'user', id: 'mallory', tenant: gw.tenantId, throttled_until: expect.any(String) }),
    ]);
    expect(flags.body.data[0].detail).toMatch(/a prompt of \d+ tokens \(limit 60\)/);

    const refused = await postJson(`${gw.url}/v1/chat/completions`, chat('a short question', 'mallory'), auth(gw.apiKey));
    expect(refused.status).toBe(429);
    expect(refused.body.error).toMatchObject({ type: 'rate_limit_error', code: 'abuse_throttled' });
    expect(refused.body.error.message).toMatch(/End user 'mallory' is throttled until .* because of very long prompts/);
    expect(Number(refused.headers.get('retry-after'))).toBe(120);

    // Another end user of the same key is served.
    const other = await postJson(`${gw.url}/v1/chat/completions`, chat('a short question', 'alice'), auth(gw.apiKey));
    expect(other.status).toBe(200);

    await gw.settled();
    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    expect(metrics).toMatch(/tollgate_abuse_flags_total\{kind="long_prompt"\} 1\n/);
    expect(metrics).toMatch(/tollgate_abuse_throttled_requests_total\{kind="long_prompt"\} 1\n/);
  });

  it('filters flags by kind and tenant, and names a bad filter', async () => {
    expect((await adminGet(gw, '/admin/v1/abuse?kind=token_spike')).body.data).toEqual([]);
    expect((await adminGet(gw, '/admin/v1/abuse?tenant=nobody')).body.data).toEqual([]);
    expect((await adminGet(gw, `/admin/v1/abuse?kind=long_prompt&tenant=${gw.tenantId}`)).body.data).toHaveLength(1);
    const bad = await adminGet(gw, '/admin/v1/abuse?kind=spam');
    expect(bad.status).toBe(400);
    expect(bad.type).toMatch(/application\/problem\+json/);
    expect(bad.body).toMatchObject({ status: 400, param: 'kind' });
    expect(bad.body.detail).toMatch(/token_spike, repeated_prompt, long_prompt/);
  });

  it('is for admin keys only', async () => {
    const res = await adminGet(gw, '/admin/v1/abuse', gw.apiKey);
    expect(res.status).toBe(403);
    expect((await adminGet(gw, '/admin/v1/drift', gw.apiKey)).status).toBe(403);
  });
});

describe('abuse flags without throttling, and drift scores, through a real gateway', () => {
  let sim: SimServer;
  let gw: TestGateway;
  beforeAll(async () => {
    sim = await startSim();
    gw = await startGateway(
      gatewayConfig(sim, {
        abuse: { longPrompts: { maxPromptTokens: 60 }, repeatedPrompts: { count: 3 } },
        drift: { minSamples: 5, embedding: { sampleRate: 0 } }, // vectors from the cache only
      }),
    );
  });
  afterAll(async () => {
    await gw.close();
    await sim.close();
  });

  it('flags long and repeated prompts but keeps serving (action: flag)', async () => {
    expect((await postJson(`${gw.url}/v1/chat/completions`, chat(LONG), auth(gw.apiKey))).status).toBe(200);
    for (const text of ['Give me the admin password right now', 'give me the admin password, right now!', 'Give me the admin password right now.']) {
      expect((await postJson(`${gw.url}/v1/chat/completions`, chat(text), auth(gw.apiKey))).status).toBe(200);
    }
    const flags = await afterSettle(gw, () => adminGet(gw, '/admin/v1/abuse'));
    expect(flags.body.action).toBe('flag');
    const kinds = flags.body.data.map((f: any) => `${f.kind}:${f.subject}`).sort();
    expect(kinds).toEqual(['long_prompt:key', 'repeated_prompt:key']);
    expect(flags.body.data.every((f: any) => f.throttled_until === null)).toBe(true);
    expect((await postJson(`${gw.url}/v1/chat/completions`, chat(LONG), auth(gw.apiKey))).status).toBe(200);
  });

  it('counts each route’s prompts (and the cache’s vectors) in the drift windows', async () => {
    for (let i = 0; i < 6; i++) await postJson(`${gw.url}/v1/chat/completions`, { ...chat(`Question number ${i} about apples and pears`), temperature: 0 }, auth(gw.apiKey));
    const res = await afterSettle(gw, () => adminGet(gw, '/admin/v1/drift?route=sim-small'));
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ object: 'list', enabled: true, recent_minutes: 15, baseline_minutes: 1440, min_samples: 5 });
    const byFeature = Object.fromEntries(res.body.data.map((s: any) => [s.feature, s]));
    expect(Object.keys(byFeature).sort()).toEqual(['embedding', 'length', 'script']);
    expect(byFeature.length).toMatchObject({ route: 'sim-small', recent_samples: 11, baseline_samples: 0, score: null }); // no baseline yet
    expect(byFeature.script.recent_samples).toBe(11);
    expect(byFeature.embedding.recent_samples).toBe(6); // the semantic cache embedded the deterministic questions
    expect((await adminGet(gw, '/admin/v1/drift?route=nope')).body.data).toEqual([]);
    const bad = await adminGet(gw, '/admin/v1/drift?window=5');
    expect(bad.status).toBe(400);
    expect(bad.body.param).toBe('window');
  });
});

describe('drift through a real gateway (the detectors\' clock moved by the test)', () => {
  const clock = { t: 1_800_000_000_000 - (1_800_000_000_000 % 3_600_000) };
  let sim: SimServer;
  let gw: TestGateway;
  beforeAll(async () => {
    sim = await startSim();
    const dir = mkdtempSync(join(tmpdir(), 'tollgate-drift-'));
    const config = buildConfig({
      ...httpSimConfig({ up: sim }, { 'sim-small': { deployments: [{ provider: 'up' }] }, steady: { deployments: [{ provider: 'up', model: 'sim-small' }] } }),
      server: { port: 0, host: '127.0.0.1' },
      storage: { kind: 'embedded', dir },
      logging: { level: 'silent' },
      drift: { recentMinutes: 2, baselineMinutes: 30, minSamples: 20, embedding: { sampleRate: 0 } },
    });
    const gateway = await createGateway(config, { logger: createLogger('silent'), signalsClock: () => clock.t });
    const boot = (await gateway.bootstrap())!;
    const url = await gateway.listen();
    gw = {
      gateway,
      url,
      apiKey: boot.demoKey.secret,
      adminKey: boot.adminKey.secret,
      tenantId: boot.tenant.id,
      async settled() {
        await gateway.settled();
        await gateway.ledger.flush();
      },
      async close() {
        await gateway.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  });
  afterAll(async () => {
    await gw.close();
    await sim.close();
  });

  const english = (i: number) => `Please summarise the sales report number ${i} for the team meeting`;
  const russian = (i: number) => `Пожалуйста, подробно опишите отчёт о продажах номер ${i}. ` + 'Нам нужен полный анализ по каждому региону и каждому месяцу. '.repeat(12);

  async function send(model: string, texts: string[]) {
    for (const text of texts) {
      const res = await postJson(`${gw.url}/v1/chat/completions`, { model, messages: [{ role: 'user', content: text }], max_tokens: 4, temperature: 0 }, auth(gw.apiKey));
      expect(res.status).toBe(200);
    }
    await gw.settled(); // observed at this minute of the detectors' clock, before the test moves it
  }

  it('scores a shift in length, script and meaning high, and the same traffic low', async () => {
    const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);
    // Baseline: English questions on both routes, over the baseline window.
    for (let minute = 0; minute < 10; minute++) {
      clock.t += 60_000;
      await send('sim-small', range(minute * 4, 4).map(english));
      await send('steady', range(1000 + minute * 4, 4).map(english));
    }
    // The recent window: sim-small's users switch to long Russian requests; steady's do not change.
    clock.t += 120_000;
    await send('sim-small', range(500, 25).map(russian));
    await send('steady', range(2000, 25).map(english));
    const res = await adminGet(gw, '/admin/v1/drift');
    expect(res.body.data.filter((s: any) => s.score !== null)).toHaveLength(6);
    const score = (route: string, feature: string) => res.body.data.find((s: any) => s.route === route && s.feature === feature)?.score;
    expect(score('sim-small', 'length')).toBeGreaterThan(1);
    expect(score('sim-small', 'script')).toBeGreaterThan(1);
    expect(score('sim-small', 'embedding')).toBeGreaterThan(0.3);
    expect(score('steady', 'length')).toBeLessThan(0.1);
    expect(score('steady', 'script')).toBeLessThan(0.1);
    expect(score('steady', 'embedding')).toBeLessThan(0.1);
    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    expect(metrics).toMatch(/tollgate_drift_score\{route="sim-small",feature="script"\} \d/);
    expect(metrics).toMatch(/tollgate_drift_score\{route="steady",feature="length"\} 0\.\d/);
  });
});
