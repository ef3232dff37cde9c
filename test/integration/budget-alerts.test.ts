import { type Server, createServer } from 'node:http';
import { type Agent, getGlobalDispatcher } from 'undici';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { verifyWebhook } from '../../src/observability/webhook.js';
import type { SimServer } from '../../src/providers/simulated/server.js';
import { type TestGateway, auth, hello, httpSimConfig, postJson, startGateway, startSim } from '../helpers/gateway.js';

const SECRET = 'a-webhook-secret-of-some-length';

describe('budget alerts', () => {
  let sim: SimServer;
  let gw: TestGateway;
  let receiver: Server;
  let origin: string;
  const received: Array<{ valid: boolean; body: any }> = [];
  /** Deliveries the gateway has started to the receiver and not yet seen answered (undici's pool for it). */
  const deliveriesInFlight = () => {
    const s = (getGlobalDispatcher() as Agent).stats[origin] as { pending?: number; queued?: number; running?: number } | undefined;
    return (s?.pending ?? 0) + (s?.queued ?? 0) + (s?.running ?? 0);
  };

  beforeAll(async () => {
    receiver = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        const valid = verifyWebhook(
          SECRET,
          { timestamp: req.headers['x-tollgate-timestamp'] as string, signature: req.headers['x-tollgate-signature'] as string },
          body,
        );
        received.push({ valid, body: JSON.parse(body) });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    const port = (receiver.address() as { port: number }).port;
    origin = `http://127.0.0.1:${port}`;
    sim = await startSim();
    gw = await startGateway(
      httpSimConfig(
        { up: sim },
        // ~$0.004 a request against a $0.02 daily budget: a handful of requests cross 50%, 80%, 100%.
        { 'sim-small': { deployments: [{ provider: 'up' }], price: { input: 100, output: 100 } } },
        {
          tiers: { standard: { budgets: { tenant: { dailyUsd: 0.02 } } } },
          alerts: { budgetThresholds: [0.5, 0.8, 1], webhook: { url: `http://127.0.0.1:${port}/hook`, secret: SECRET } },
        },
      ),
    );
  });
  afterAll(async () => {
    await gw.close();
    await sim.close();
    await new Promise((r) => receiver.close(r));
  });

  it('sends one signed alert per threshold crossed (100% when the budget refuses), never twice', async () => {
    let status = 200;
    for (let i = 0; i < 40 && status === 200; i++) {
      status = (await postJson(`${gw.url}/v1/chat/completions`, hello('sim-small', { max_tokens: 20, seed: i }), auth(gw.apiKey))).status;
      await gw.settled(); // its spend is counted (and any threshold it crossed claimed) before the next one
    }
    expect(status).toBe(402);
    // one more refusal: the 100% alert must not repeat
    expect((await postJson(`${gw.url}/v1/chat/completions`, hello('sim-small', { max_tokens: 20 }), auth(gw.apiKey))).status).toBe(402);
    // Every alert the gateway will ever send for this was started by now (settle and the refusals
    // claim them, then start the delivery): wait until each one started has been answered.
    await gw.settled();
    await vi.waitFor(
      () => {
        expect(deliveriesInFlight()).toBe(0);
        expect(received.length).toBeGreaterThanOrEqual(3);
      },
      { timeout: 10_000, interval: 5 },
    );
    expect(received).toHaveLength(3);
    expect(received.every((r) => r.valid)).toBe(true);
    const thresholds = received.map((r) => r.body.threshold);
    expect(new Set(thresholds).size).toBe(thresholds.length); // each at most once
    expect(thresholds.sort()).toEqual([0.5, 0.8, 1]);
    expect(received[0]!.body).toMatchObject({
      type: 'budget.threshold',
      budget: { scope: 'tenant', id: gw.tenantId, period: 'day', limit_usd: '0.02' },
    });
    expect(Number(received[0]!.body.used_usd)).toBeGreaterThanOrEqual(0.01);
  });

  it('rejects a forged or stale signature', () => {
    const body = '{"type":"budget.threshold"}';
    const now = Date.now();
    const ts = Math.floor(now / 1000);
    expect(verifyWebhook(SECRET, { timestamp: String(ts), signature: 'v1=00' }, body, 300, now)).toBe(false);
    expect(verifyWebhook('another-secret-entirely', { timestamp: String(ts), signature: undefined }, body, 300, now)).toBe(false);
    expect(verifyWebhook(SECRET, { timestamp: String(ts - 3600), signature: 'v1=x' }, body, 300, now)).toBe(false);
  });
});
