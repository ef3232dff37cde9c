import { type Server, createServer } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyWebhook } from '../../src/observability/webhook.js';
import type { SimServer } from '../../src/providers/simulated/server.js';
import { type TestGateway, auth, hello, httpSimConfig, postJson, startGateway, startSim } from '../helpers/gateway.js';

const SECRET = 'a-webhook-secret-of-some-length';

describe('budget alerts', () => {
  let sim: SimServer;
  let gw: TestGateway;
  let receiver: Server;
  const received: Array<{ valid: boolean; body: any }> = [];

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
      await new Promise((r) => setTimeout(r, 5)); // let settle run
    }
    expect(status).toBe(402);
    // one more refusal: the 100% alert must not repeat
    expect((await postJson(`${gw.url}/v1/chat/completions`, hello('sim-small', { max_tokens: 20 }), auth(gw.apiKey))).status).toBe(402);
    await expect.poll(() => received.length, { timeout: 3_000 }).toBe(3);
    await new Promise((r) => setTimeout(r, 200));
    expect(received.every((r) => r.valid)).toBe(true);
    const thresholds = received.map((r) => r.body.threshold);
    expect(new Set(thresholds).size).toBe(thresholds.length); // each at most once
    expect(thresholds.sort()).toEqual([0.5, 0.8, 1]);
    expect(received[0].body).toMatchObject({
      type: 'budget.threshold',
      budget: { scope: 'tenant', id: gw.tenantId, period: 'day', limit_usd: '0.02' },
    });
    expect(Number(received[0].body.used_usd)).toBeGreaterThanOrEqual(0.01);
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
