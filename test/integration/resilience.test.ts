import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { SimServer } from '../../src/providers/simulated/server.js';
import { type TestGateway, auth, hello, httpSimConfig, postJson, postStream, startGateway, startSim } from '../helpers/gateway.js';

const chat = (gw: TestGateway, body: unknown = hello('chain')) => postJson(`${gw.url}/v1/chat/completions`, body, auth(gw.apiKey));

/** The breakers' cool-down (config below). */
const COOLDOWN_MS = 400;

describe('resilience: retries, fallback, breaker, timeouts', () => {
  let primary: SimServer;
  let backup: SimServer;
  let gw: TestGateway;
  /** Every wait before a retry, in ms (the gateway's retry sleep is replaced: it records and returns at once). */
  const waits: number[] = [];

  /** tollgate_upstream_attempts_total for a deployment and outcome. */
  async function attemptsCounted(deployment: string, outcome: string): Promise<number> {
    const text = await (await fetch(`${gw.url}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`tollgate_upstream_attempts_total{deployment="${deployment}",outcome="${outcome}"}`));
    return line === undefined ? 0 : Number(line.split(' ').at(-1));
  }

  beforeAll(async () => {
    // The breakers read Date.now(): a fake Date (real timers and sockets) that only the tests move,
    // so a cool-down ends exactly when a test says and never before.
    vi.useFakeTimers({ toFake: ['Date'] });
    primary = await startSim();
    backup = await startSim();
    gw = await startGateway(
      httpSimConfig(
        { primary, backup },
        {
          chain: {
            deployments: [
              { provider: 'primary', model: 'sim-small' },
              { provider: 'backup', model: 'sim-large' },
            ],
          },
          solo: { deployments: [{ provider: 'primary', model: 'sim-small' }] },
        },
        {
          resilience: {
            attemptTimeoutMs: 300,
            streamIdleTimeoutMs: 300,
            deadlineMs: 5_000,
            retry: { maxRetries: 1, baseDelayMs: 10, maxDelayMs: 50, maxRetryAfterMs: 2_000 },
            breaker: { failureThreshold: 3, cooldownMs: COOLDOWN_MS, halfOpenMaxProbes: 1, successesToClose: 1 },
          },
        },
      ),
      {
        retrySleep: async (ms, signal) => {
          waits.push(ms);
          if (signal.aborted) throw signal.reason;
        },
      },
    );
  });
  afterAll(async () => {
    await gw.close();
    await primary.close();
    await backup.close();
    vi.useRealTimers();
  });
  afterEach(async () => {
    primary.engine.reset();
    backup.engine.reset();
    // any open breaker cools down (the clock moves past the cool-down) and closes again with a success
    vi.setSystemTime(Date.now() + COOLDOWN_MS);
    expect((await chat(gw, hello('solo'))).status).toBe(200);
    expect(gw.gateway.breakers.get('sim-small@primary').state).toBe('closed');
    primary.engine.reset();
    waits.length = 0;
  });

  it('retries a 5xx on the same deployment, then succeeds there', async () => {
    primary.engine.script([{ kind: 'error', status: 500 }]);
    const res = await chat(gw);
    expect(res.status).toBe(200);
    expect(res.headers.get('x-tollgate-model')).toBe('sim-small');
    expect(res.headers.get('x-tollgate-attempts')).toBe('2');
    expect(primary.engine.stats().total).toBe(2);
    expect(backup.engine.stats().total).toBe(0);
    expect(waits).toHaveLength(1); // one backoff wait, within retry.maxDelayMs
    expect(waits[0]).toBeLessThanOrEqual(50);
  });

  it('falls back to the next deployment when retries are spent', async () => {
    primary.engine.script([
      { kind: 'error', status: 502 },
      { kind: 'error', status: 503 },
    ]);
    const res = await chat(gw);
    expect(res.status).toBe(200);
    expect(res.headers.get('x-tollgate-model')).toBe('sim-large');
    expect(res.headers.get('x-tollgate-provider')).toBe('backup');
    expect(res.headers.get('x-tollgate-attempts')).toBe('3');
  });

  it('falls back on a timeout (hang) and on a connection reset', async () => {
    const [timeouts, resets] = [await attemptsCounted('sim-small@primary', 'timeout'), await attemptsCounted('sim-small@primary', 'connection')];
    primary.engine.script([{ kind: 'hang' }, { kind: 'reset' }]); // the hang never answers: only the attempt timeout ends it
    const res = await chat(gw);
    expect(res.status).toBe(200);
    expect(res.headers.get('x-tollgate-provider')).toBe('backup');
    expect(res.headers.get('x-tollgate-attempts')).toBe('3'); // hang, reset, then the backup
    expect(await attemptsCounted('sim-small@primary', 'timeout')).toBe(timeouts + 1); // the attempt timeout fired
    expect(await attemptsCounted('sim-small@primary', 'connection')).toBe(resets + 1);
    expect(primary.engine.stats().aborted).toBe(1); // the timed-out call was dropped upstream
  });

  it('honours Retry-After on a 429 before retrying', async () => {
    primary.engine.script([{ kind: 'error', status: 429, retryAfterSeconds: 0.4 }]);
    const res = await chat(gw, hello('solo'));
    expect(res.status).toBe(200);
    expect(res.headers.get('x-tollgate-attempts')).toBe('2');
    expect(waits).toEqual([400]); // Retry-After, not the 10-50 ms backoff
  });

  it('moves to the next deployment at once when Retry-After is longer than allowed', async () => {
    primary.engine.script([{ kind: 'error', status: 429, retryAfterSeconds: 30 }]);
    const res = await chat(gw);
    expect(res.status).toBe(200);
    expect(res.headers.get('x-tollgate-provider')).toBe('backup');
    expect(res.headers.get('x-tollgate-attempts')).toBe('2');
    expect(waits).toEqual([]); // no wait before the next deployment
  });

  it('answers 429 with Retry-After when every deployment is rate limited', async () => {
    primary.engine.script([
      { kind: 'error', status: 429, retryAfterSeconds: 5 },
    ]);
    const res = await chat(gw, hello('solo'));
    expect(res.status).toBe(429);
    expect(res.body.error.type).toBe('rate_limit_error');
    expect(res.headers.get('retry-after')).toBe('5');
  });

  it('does not retry or fall back on a non-retryable upstream 400, and passes it through', async () => {
    primary.engine.script([{ kind: 'error', status: 400 }]);
    const res = await chat(gw);
    expect(res.status).toBe(400);
    expect(res.body.error.message).toMatch(/upstream model rejected/);
    expect(primary.engine.stats().total).toBe(1);
    expect(backup.engine.stats().total).toBe(0);
  });

  it('answers 504 when the only deployment keeps timing out', async () => {
    primary.engine.script([{ kind: 'hang' }, { kind: 'hang' }]);
    const res = await chat(gw, hello('solo'));
    expect(res.status).toBe(504);
    expect(res.body.error.code).toBe('upstream_timeout');
  });

  it('opens the breaker after repeated failures, skips the dead deployment at once, then recovers', async () => {
    primary.engine.setFaults({ errorRate: { '500': 1 } });
    // 3 consecutive failures open the breaker (threshold 3): request 1 = 2 failures, request 2 = 1 more.
    await chat(gw);
    await chat(gw);
    expect(gw.gateway.breakers.get('sim-small@primary').state).toBe('open');
    const before = primary.engine.stats().total;
    const res = await chat(gw);
    expect(res.status).toBe(200);
    expect(res.headers.get('x-tollgate-provider')).toBe('backup');
    expect(res.headers.get('x-tollgate-attempts')).toBe('1'); // the skipped deployment is not called
    expect(primary.engine.stats().total).toBe(before);
    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    expect(metrics).toMatch(/tollgate_circuit_breaker_state\{deployment="sim-small@primary"\} 2/);

    // A solo model whose only deployment is open fails fast with 503 and Retry-After.
    const fast = await chat(gw, hello('solo'));
    expect(fast.status).toBe(503);
    expect(fast.body.error.code).toBe('circuit_open');
    expect(fast.headers.get('retry-after')).toBe('1'); // 400 ms of cool-down left, in whole seconds

    // Just before the end of the cool-down it is still open; after it, a successful probe closes it.
    primary.engine.setFaults({});
    vi.setSystemTime(Date.now() + COOLDOWN_MS - 1);
    expect(gw.gateway.breakers.get('sim-small@primary').state).toBe('open');
    vi.setSystemTime(Date.now() + 1);
    expect(gw.gateway.breakers.get('sim-small@primary').state).toBe('half-open');
    const probe = await chat(gw);
    expect(probe.headers.get('x-tollgate-provider')).toBe('primary');
    expect(gw.gateway.breakers.get('sim-small@primary').state).toBe('closed');
  });

  it('falls back before the first byte of a stream', async () => {
    primary.engine.script([{ kind: 'error', status: 500 }, { kind: 'error', status: 500 }]);
    const s = await postStream(`${gw.url}/v1/chat/completions`, hello('chain', { stream: true }), auth(gw.apiKey));
    expect(s.status).toBe(200);
    expect(s.headers.get('x-tollgate-provider')).toBe('backup');
    expect(s.sawDone).toBe(true);
  });

  it('ends a stream that breaks midway with an SSE error event and no [DONE]', async () => {
    primary.engine.script([{ kind: 'break', afterChunks: 3 }]);
    const s = await postStream(`${gw.url}/v1/chat/completions`, hello('chain', { stream: true }), auth(gw.apiKey));
    expect(s.status).toBe(200);
    expect(s.sawDone).toBe(false);
    const last = s.events.at(-1);
    expect(last.error.code).toBe('upstream_error');
    expect(last.error.type).toBe('server_error');
    expect(s.events.slice(0, -1).every((e) => e.object === 'chat.completion.chunk')).toBe(true);
    expect(backup.engine.stats().total).toBe(0); // no fallback after the first byte
  });
});

describe('client disconnect', () => {
  let slow: SimServer;
  let gw: TestGateway;
  beforeAll(async () => {
    slow = await startSim({
      // 200 tokens at 1 a second: the stream cannot end on its own during the test.
      slow: { type: 'chat', ttftMs: { median: 0, p95: 0 }, tokensPerSecond: 1, outputTokens: { min: 200, max: 200 }, dimensions: 8 },
      stuck: { type: 'chat', ttftMs: { median: 0, p95: 0 }, tokensPerSecond: 0, outputTokens: { min: 5, max: 5 }, dimensions: 8 },
    });
    gw = await startGateway(httpSimConfig({ slow }, { slow: { deployments: [{ provider: 'slow' }] }, stuck: { deployments: [{ provider: 'slow' }] } }));
  });
  afterAll(async () => {
    await gw.close();
    await slow.close();
  });

  it('aborts the upstream stream when the client goes away mid-stream', async () => {
    const ac = new AbortController();
    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...auth(gw.apiKey) },
      body: JSON.stringify(hello('slow', { stream: true })),
      signal: ac.signal,
    });
    const reader = res.body!.getReader();
    await reader.read(); // some bytes arrived
    ac.abort();
    await expect.poll(() => slow.engine.stats().aborted, { timeout: 10_000, interval: 5 }).toBe(1);
    expect(slow.engine.stats().completed).toBe(0);
  });

  it('aborts the upstream call when the client goes away before the answer', async () => {
    slow.engine.reset();
    slow.engine.script([{ kind: 'hang' }]); // no answer ever comes: only the client's leaving ends the call
    const ac = new AbortController();
    const pending = fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...auth(gw.apiKey) },
      body: JSON.stringify(hello('stuck')),
      signal: ac.signal,
    }).catch(() => undefined);
    await expect.poll(() => slow.engine.stats().inFlight, { timeout: 10_000, interval: 5 }).toBe(1);
    ac.abort();
    await pending;
    await expect.poll(() => slow.engine.stats().aborted, { timeout: 10_000, interval: 5 }).toBe(1);
  });
});
