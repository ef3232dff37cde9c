import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimServer } from '../../src/providers/simulated/server.js';
import { type TestGateway, auth, hello, httpSimConfig, postJson, postStream, startGateway, startSim } from '../helpers/gateway.js';

const PICO = 1e12;

describe('metering: one ledger event per request, exact cost, usage reports', () => {
  let primary: SimServer;
  let backup: SimServer;
  let gw: TestGateway;

  beforeAll(async () => {
    primary = await startSim();
    backup = await startSim();
    gw = await startGateway(
      httpSimConfig(
        { primary, backup },
        {
          chat: {
            deployments: [{ provider: 'primary', model: 'sim-small' }, { provider: 'backup', model: 'sim-large' }],
            price: { input: 0.15, output: 0.6 },
          },
          big: { deployments: [{ provider: 'primary', model: 'sim-large' }], price: { input: 5, output: 15 } },
        },
        { resilience: { retry: { maxRetries: 1, baseDelayMs: 1, maxDelayMs: 5 } } },
      ),
    );
  });
  afterAll(async () => {
    await gw.close();
    await primary.close();
    await backup.close();
  });

  async function admin(path: string, accept = 'application/json') {
    const res = await fetch(`${gw.url}/admin/v1${path}`, { headers: { ...auth(gw.adminKey), accept } });
    return { status: res.status, type: res.headers.get('content-type') ?? '', text: await res.text() };
  }

  it('ledger totals equal the usage and cost the clients were told, exactly', async () => {
    let prompt = 0;
    let completion = 0;
    let costPico = 0;
    const count = (usage: { prompt_tokens: number; completion_tokens: number }, cost: string | null) => {
      prompt += usage.prompt_tokens;
      completion += usage.completion_tokens;
      costPico += Math.round(Number(cost) * PICO);
    };
    // plain, with a retry, with a fallback, on another model, and two with the same client request id
    primary.engine.script([{ kind: 'ok' }, { kind: 'error', status: 500 }, { kind: 'ok' }, { kind: 'error', status: 502 }, { kind: 'error', status: 503 }]);
    for (const [model, headers] of [
      ['chat', {}],
      ['chat', {}],
      ['chat', {}],
      ['big', { 'x-request-id': 'same-id' }],
      ['big', { 'x-request-id': 'same-id' }],
    ] as const) {
      const r = await postJson(`${gw.url}/v1/chat/completions`, hello(model, { seed: 3 }), { ...auth(gw.apiKey), ...headers });
      expect(r.status).toBe(200);
      count(r.body.usage, r.headers.get('x-tollgate-cost-usd'));
    }
    // a stream, with usage asked for so the test can see it
    const s = await postStream(`${gw.url}/v1/chat/completions`, hello('chat', { stream: true, stream_options: { include_usage: true } }), auth(gw.apiKey));
    const usage = s.events.at(-1).usage;
    const cost = (usage.prompt_tokens * 0.15 + usage.completion_tokens * 0.6) / 1e6;
    count(usage, String(cost));
    // an error after authentication: recorded, costs nothing
    expect((await postJson(`${gw.url}/v1/chat/completions`, hello('nope'), auth(gw.apiKey))).status).toBe(404);

    const report = await admin('/usage?group_by=tenant');
    expect(report.status).toBe(200);
    const body = JSON.parse(report.text);
    expect(body.data).toHaveLength(1);
    const row = body.data[0];
    expect(row).toMatchObject({ tenant: gw.tenantId, requests: 7, errors: 1, prompt_tokens: prompt, completion_tokens: completion });
    expect(Math.round(Number(row.cost_usd) * PICO)).toBe(costPico);
    expect(body.total.requests).toBe(7);
  });

  it('groups by model and day, and filters', async () => {
    const res = JSON.parse((await admin('/usage?group_by=model,day')).text);
    const models = res.data.map((r: { model: string }) => r.model).sort();
    expect(models).toEqual(['big', 'chat', 'nope']);
    expect(res.data[0].day).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    const onlyBig = JSON.parse((await admin('/usage?group_by=model&model=big')).text);
    expect(onlyBig.data).toEqual([expect.objectContaining({ model: 'big', requests: 2 })]);
    const future = JSON.parse((await admin('/usage?from=2099-01-01&to=2099-02-01')).text);
    expect(future.data).toEqual([]);
  });

  it('answers CSV when asked', async () => {
    const csv = await admin('/usage?group_by=tenant,model', 'text/csv');
    expect(csv.type).toMatch(/^text\/csv/);
    const lines = csv.text.trim().split('\n');
    expect(lines[0]).toBe('tenant,model,requests,errors,prompt_tokens,completion_tokens,cost_usd,saved_usd');
    expect(lines.length).toBe(4);
  });

  it('names a bad parameter', async () => {
    const bad = await admin('/usage?group_by=planet');
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.text)).toMatchObject({ param: 'group_by' });
    const range = await admin('/usage?from=2026-02-01&to=2026-01-01');
    expect(range.status).toBe(400);
    expect(JSON.parse(range.text).detail).toMatch(/must be before/);
  });
});
