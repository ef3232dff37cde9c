/**
 * Alert rules through a real gateway: an error-rate rule fires once (signed webhook), stays quiet
 * while the errors go on, and resolves once; a breaker rule fires for the deployment whose breaker
 * opened; GET /admin/v1/alerts and /metrics show the state.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { SimServer } from '../../src/providers/simulated/server.js';
import { type TestGateway, auth, hello, httpSimConfig, postJson, startGateway, startSim } from '../helpers/gateway.js';
import { type WebhookReceiver, startWebhookReceiver } from '../helpers/webhook-receiver.js';

const SECRET = 'alert-secret-0123456789';

const EVALUATE_MS = 100;

describe('alert rules', () => {
  let sim: SimServer;
  let gw: TestGateway;
  let rx: WebhookReceiver;

  beforeAll(async () => {
    // The rules are evaluated on a setInterval: faked (only setInterval; timeouts, Date and sockets
    // stay real), so an evaluation happens exactly when a test moves the clock, and never between.
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    sim = await startSim();
    rx = await startWebhookReceiver({ secret: SECRET });
    gw = await startGateway(
      httpSimConfig({ up: sim }, { 'sim-small': { deployments: [{ provider: 'up' }] } }, {
        resilience: { retry: { maxRetries: 0, baseDelayMs: 1, maxDelayMs: 2 }, breaker: { failureThreshold: 1000 } },
        alerts: {
          webhook: { url: rx.url, secret: SECRET, maxAttempts: 1 },
          evaluateMs: EVALUATE_MS,
          rules: [{ name: 'errors', type: 'error_rate', threshold: 0.5, windowSeconds: 60, minRequests: 5, severity: 'critical' }],
        },
      }),
    );
  });
  afterAll(async () => {
    await gw.close();
    await sim.close();
    await rx.close();
    vi.useRealTimers();
  });

  const send = async (n: number) => {
    for (let i = 0; i < n; i++) await postJson(`${gw.url}/v1/chat/completions`, hello('sim-small', { max_tokens: 5 }), auth(gw.apiKey));
  };
  const alerts = async () => (await fetch(`${gw.url}/admin/v1/alerts`, { headers: auth(gw.adminKey) })).json() as Promise<any>;
  /** Every request so far has settled (counted in the live statistics); then exactly one evaluation. */
  const evaluate = async () => {
    await gw.settled();
    await vi.advanceTimersByTimeAsync(EVALUATE_MS);
  };

  it('fires once when the error rate passes the threshold, de-duplicates, and resolves once', async () => {
    sim.engine.script(Array.from({ length: 8 }, () => ({ kind: 'error' as const, status: 500 })));
    await send(8);
    await evaluate();
    const [firing] = await rx.waitFor(1);
    expect(firing!.signatureValid).toBe(true);
    expect(firing!.event).toBe('alert.firing');
    expect(firing!.body).toMatchObject({
      type: 'alert.firing',
      alert: { id: 'errors{tier=none}', rule: 'errors', kind: 'error_rate', severity: 'critical', labels: { tier: 'none' }, threshold: 0.5 },
    });
    expect(firing!.body.alert.value).toBe(1); // 8 errors of 8
    expect((await alerts()).firing.map((a: any) => a.id)).toEqual(['errors{tier=none}']);
    expect(await (await fetch(`${gw.url}/metrics`)).text()).toMatch(/tollgate_alerts_firing\{rule="errors"\} 1/);

    // More errors, and some successes, while it fires: evaluated again and again (the value it
    // shows follows), still one alert sent.
    sim.engine.script(Array.from({ length: 4 }, () => ({ kind: 'error' as const, status: 500 })));
    await send(6); // 12 errors of 14
    for (let i = 0; i < 3; i++) await evaluate();
    const during = await alerts();
    expect(during.firing.map((a: any) => [a.id, a.value])).toEqual([['errors{tier=none}', 12 / 14]]);
    expect(during.recent.map((e: any) => e.type)).toEqual(['alert.firing']); // every event, sent or not
    expect(rx.deliveries.map((d) => d.event)).toEqual(['alert.firing']);

    // Healthy traffic brings the rate under the threshold (12 errors of 40): resolved, once.
    await send(26);
    await evaluate();
    const all = await rx.waitFor(2);
    expect(all[1]!.signatureValid).toBe(true);
    expect(all[1]!.body).toMatchObject({ type: 'alert.resolved', alert: { id: 'errors{tier=none}', started_at: firing!.body.alert.started_at } });
    expect(all[1]!.body.alert.value).toBe(12 / 40);
    for (let i = 0; i < 3; i++) await evaluate();
    const state = await alerts();
    expect(state).toMatchObject({ object: 'alerts', delivering: true, firing: [] });
    expect(state.recent.map((e: any) => e.type)).toEqual(['alert.resolved', 'alert.firing']); // nothing more evaluated since
    expect(rx.deliveries).toHaveLength(2);
  });

  it('is for admins only', async () => {
    const res = await fetch(`${gw.url}/admin/v1/alerts`, { headers: auth(gw.apiKey) });
    expect(res.status).toBe(403);
  });
});

describe('breaker alert', () => {
  it('fires for the deployment whose breaker opened', async () => {
    const sim = await startSim();
    const gw = await startGateway(
      httpSimConfig({ up: sim }, { 'sim-small': { deployments: [{ provider: 'up' }] } }, {
        resilience: { retry: { maxRetries: 0, baseDelayMs: 1, maxDelayMs: 2 }, breaker: { failureThreshold: 3 } },
        alerts: { evaluateMs: 100, rules: [{ name: 'breaker', type: 'breaker_open' }] },
      }),
    );
    try {
      sim.engine.script(Array.from({ length: 5 }, () => ({ kind: 'error' as const, status: 500 })));
      for (let i = 0; i < 5; i++) await postJson(`${gw.url}/v1/chat/completions`, hello('sim-small'), auth(gw.apiKey));
      expect(gw.gateway.breakers.get('sim-small@up').state).toBe('open');
      // The next evaluations (every 100 ms, real timers here) fire it.
      let state: any;
      await vi.waitFor(
        async () => {
          state = await (await fetch(`${gw.url}/admin/v1/alerts`, { headers: auth(gw.adminKey) })).json();
          expect(state.firing).toHaveLength(1);
        },
        { timeout: 10_000, interval: 5 },
      );
      expect(state.delivering).toBe(false); // no webhook: listed, not sent
      expect(state.firing).toHaveLength(1);
      expect(state.firing[0]).toMatchObject({ rule: 'breaker', kind: 'breaker_open' });
      expect(state.firing[0].labels.deployment).toMatch(/up/);
    } finally {
      await gw.close();
      await sim.close();
    }
  });
});
