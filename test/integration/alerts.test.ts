/**
 * Alert rules through a real gateway: an error-rate rule fires once (signed webhook), stays quiet
 * while the errors go on, and resolves once; a breaker rule fires for the deployment whose breaker
 * opened; GET /admin/v1/alerts and /metrics show the state.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimServer } from '../../src/providers/simulated/server.js';
import { type TestGateway, auth, hello, httpSimConfig, postJson, startGateway, startSim } from '../helpers/gateway.js';
import { type WebhookReceiver, startWebhookReceiver } from '../helpers/webhook-receiver.js';

const SECRET = 'alert-secret-0123456789';

describe('alert rules', () => {
  let sim: SimServer;
  let gw: TestGateway;
  let rx: WebhookReceiver;

  beforeAll(async () => {
    sim = await startSim();
    rx = await startWebhookReceiver({ secret: SECRET });
    gw = await startGateway(
      httpSimConfig({ up: sim }, { 'sim-small': { deployments: [{ provider: 'up' }] } }, {
        resilience: { retry: { maxRetries: 0, baseDelayMs: 1, maxDelayMs: 2 }, breaker: { failureThreshold: 1000 } },
        alerts: {
          webhook: { url: rx.url, secret: SECRET, maxAttempts: 1 },
          evaluateMs: 100,
          rules: [{ name: 'errors', type: 'error_rate', threshold: 0.5, windowSeconds: 60, minRequests: 5, severity: 'critical' }],
        },
      }),
    );
  });
  afterAll(async () => {
    await gw.close();
    await sim.close();
    await rx.close();
  });

  const send = async (n: number) => {
    for (let i = 0; i < n; i++) await postJson(`${gw.url}/v1/chat/completions`, hello('sim-small', { max_tokens: 5 }), auth(gw.apiKey));
  };
  const alerts = async () => (await fetch(`${gw.url}/admin/v1/alerts`, { headers: auth(gw.adminKey) })).json() as Promise<any>;

  it('fires once when the error rate passes the threshold, de-duplicates, and resolves once', async () => {
    sim.engine.script(Array.from({ length: 8 }, () => ({ kind: 'error' as const, status: 500 })));
    await send(8);
    const [firing] = await rx.waitFor(1);
    expect(firing!.signatureValid).toBe(true);
    expect(firing!.event).toBe('alert.firing');
    expect(firing!.body).toMatchObject({
      type: 'alert.firing',
      alert: { id: 'errors{tier=none}', rule: 'errors', kind: 'error_rate', severity: 'critical', labels: { tier: 'none' }, threshold: 0.5 },
    });
    expect(firing!.body.alert.value).toBeGreaterThan(0.5);
    expect((await alerts()).firing.map((a: any) => a.id)).toEqual(['errors{tier=none}']);
    expect(await (await fetch(`${gw.url}/metrics`)).text()).toMatch(/tollgate_alerts_firing\{rule="errors"\} 1/);

    // More errors while it fires: still one alert sent.
    sim.engine.script(Array.from({ length: 4 }, () => ({ kind: 'error' as const, status: 500 })));
    await send(4);
    await new Promise((r) => setTimeout(r, 400)); // several evaluations
    expect(rx.deliveries.filter((d) => d.event === 'alert.firing')).toHaveLength(1);

    // Healthy traffic brings the rate under the threshold (12 errors of 40): resolved, once.
    await send(28);
    const all = await rx.waitFor(2);
    expect(all[1]!.signatureValid).toBe(true);
    expect(all[1]!.body).toMatchObject({ type: 'alert.resolved', alert: { id: 'errors{tier=none}', started_at: firing!.body.alert.started_at } });
    expect(all[1]!.body.alert.value).toBeLessThan(0.5);
    await new Promise((r) => setTimeout(r, 400));
    expect(rx.deliveries).toHaveLength(2);
    const state = await alerts();
    expect(state).toMatchObject({ object: 'alerts', delivering: true, firing: [] });
    expect(state.recent.map((e: any) => e.type)).toEqual(['alert.resolved', 'alert.firing']);
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
      const until = Date.now() + 5_000;
      let state: any;
      do {
        await new Promise((r) => setTimeout(r, 100));
        state = await (await fetch(`${gw.url}/admin/v1/alerts`, { headers: auth(gw.adminKey) })).json();
      } while (state.firing.length === 0 && Date.now() < until);
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
