/**
 * What operators see of failures that are easy to miss (issue 15, item 6): a stream that failed
 * upstream after its 200 was sent counts as an error in the usage report, the request log and the
 * request metrics; every circuit breaker transition (even a half-open that lasts under a
 * millisecond) is counted in tollgate_circuit_breaker_transitions_total.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { SimServer } from '../../src/providers/simulated/server.js';
import { type TestGateway, auth, hello, httpSimConfig, postJson, postStream, startGateway, startSim } from '../helpers/gateway.js';

/** The value of one series in a /metrics text (0 when absent). */
function sample(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.split(' ').at(-1));
}

describe('a stream that fails after it started is recorded as a failure', () => {
  let sim: SimServer;
  let gw: TestGateway;

  beforeAll(async () => {
    sim = await startSim();
    gw = await startGateway(
      httpSimConfig({ up: sim }, { chat: { deployments: [{ provider: 'up', model: 'sim-small' }], price: { input: 1, output: 2 } } }, { requestLog: { flushMs: 20 } }),
    );
  });
  afterAll(async () => {
    await gw.close();
    await sim.close();
  });

  it('counts in the usage report errors, the request log and the request metrics; the client saw 200 then an error event', async () => {
    const url = `${gw.url}/v1/chat/completions`;
    expect((await postStream(url, hello('chat', { stream: true }), auth(gw.apiKey))).sawDone).toBe(true);
    sim.engine.script([{ kind: 'break', afterChunks: 2 }]);
    const broken = await postStream(url, hello('chat', { stream: true }), { ...auth(gw.apiKey), 'x-request-id': 'broken-stream' });
    expect(broken.status).toBe(200); // the status line went out before upstream failed
    expect(broken.sawDone).toBe(false);
    expect(broken.events.at(-1).error.code).toBe('upstream_error');
    await gw.settled();

    // the usage report: two requests, one error (what was streamed before the break is still billed)
    const usage = await fetch(`${gw.url}/admin/v1/usage?group_by=model`, { headers: auth(gw.adminKey) });
    const rows = ((await usage.json()) as { data: Array<Record<string, unknown>> }).data;
    expect(rows).toEqual([expect.objectContaining({ model: 'chat', requests: 2, errors: 1 })]);

    // the request log: the broken stream's row carries the failure's status and code
    await vi.waitFor(
      async () => {
        const res = await fetch(`${gw.url}/admin/v1/requests?status=5xx`, { headers: auth(gw.adminKey) });
        const body = (await res.json()) as { data: Array<Record<string, unknown>> };
        expect(body.data).toEqual([expect.objectContaining({ request_id: 'broken-stream', status: 502, error_code: 'upstream_error', stream: true })]);
      },
      { timeout: 10_000, interval: 20 },
    );

    // the request metrics: the failure's status, like an upstream error answered before the first byte
    const text = await (await fetch(`${gw.url}/metrics`)).text();
    const labels = 'route="/v1/chat/completions",model="chat",status="502",tier="none",deployment="sim-small@up"';
    expect(sample(text, `tollgate_requests_total{${labels}}`)).toBe(1);
    expect(sample(text, `tollgate_errors_total{route="/v1/chat/completions",model="chat",code="upstream_error",tier="none",deployment="sim-small@up",status="502"}`)).toBe(1);
    expect(sample(text, 'tollgate_stream_errors_total{model="chat"}')).toBe(1);
  });
});

describe('circuit breaker transitions are counted', () => {
  const COOLDOWN_MS = 400;
  let sim: SimServer;
  let gw: TestGateway;
  const transitions = async (from: string, to: string) =>
    sample(await (await fetch(`${gw.url}/metrics`)).text(), `tollgate_circuit_breaker_transitions_total{deployment="sim-small@up",from="${from}",to="${to}"}`);

  beforeAll(async () => {
    // The breaker reads Date.now(): a fake Date (real timers and sockets) that only the test moves.
    vi.useFakeTimers({ toFake: ['Date'] });
    sim = await startSim();
    gw = await startGateway(
      httpSimConfig(
        { up: sim },
        { solo: { deployments: [{ provider: 'up', model: 'sim-small' }] } },
        {
          resilience: {
            retry: { maxRetries: 0, baseDelayMs: 1, maxDelayMs: 2 },
            breaker: { failureThreshold: 2, cooldownMs: COOLDOWN_MS, halfOpenMaxProbes: 1, successesToClose: 1 },
          },
        },
      ),
    );
  });
  afterAll(async () => {
    await gw.close();
    await sim.close();
    vi.useRealTimers();
  });

  it('closed -> open -> half-open -> open -> half-open -> closed, each in /metrics', async () => {
    const url = `${gw.url}/v1/chat/completions`;
    // every possible transition is exported from the start, at 0
    for (const [from, to] of [['closed', 'open'], ['open', 'half-open'], ['half-open', 'closed'], ['half-open', 'open']]) {
      expect(await transitions(from!, to!)).toBe(0);
    }
    sim.engine.script([{ kind: 'error', status: 500 }, { kind: 'error', status: 500 }, { kind: 'error', status: 500 }]);
    expect((await postJson(url, hello('solo'), auth(gw.apiKey))).status).toBe(502);
    expect((await postJson(url, hello('solo'), auth(gw.apiKey))).status).toBe(502);
    expect(gw.gateway.breakers.get('sim-small@up').state).toBe('open');
    expect(await transitions('closed', 'open')).toBe(1);

    // cool-down over: the next request is a probe (half-open), it fails and the breaker opens again
    vi.setSystemTime(Date.now() + COOLDOWN_MS);
    expect((await postJson(url, hello('solo'), auth(gw.apiKey))).status).toBe(502);
    expect(await transitions('open', 'half-open')).toBe(1);
    expect(await transitions('half-open', 'open')).toBe(1);

    // again: this probe succeeds and the breaker closes; the half-open in between lasted no time
    vi.setSystemTime(Date.now() + COOLDOWN_MS);
    expect((await postJson(url, hello('solo'), auth(gw.apiKey))).status).toBe(200);
    expect(gw.gateway.breakers.get('sim-small@up').state).toBe('closed');
    expect(await transitions('open', 'half-open')).toBe(2);
    expect(await transitions('half-open', 'closed')).toBe(1);
    expect(await transitions('closed', 'open')).toBe(1);
    const text = await (await fetch(`${gw.url}/metrics`)).text();
    expect(sample(text, 'tollgate_circuit_breaker_state{deployment="sim-small@up"}')).toBe(0);
  });
});
