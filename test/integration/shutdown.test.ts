/**
 * Graceful shutdown, through real sockets: keep-alive connections do not hold the process for the
 * grace period (idle ones are closed at once, busy ones after their answer, which says
 * `connection: close`), and a stream still open at the grace deadline ends with an SSE error event
 * (shutting_down) and is recorded as cut by the shutdown, not as a client that left (499).
 */
import http from 'node:http';
import type { Socket } from 'node:net';
import { once } from 'node:events';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { SimServer } from '../../src/providers/simulated/server.js';
import { FAST_MODELS, type TestGateway, auth, httpSimConfig, startGateway, startSim } from '../helpers/gateway.js';

const HOUR = 3_600_000;

const chat = (model: string, stream: boolean) => ({ model, stream, messages: [{ role: 'user', content: 'Tell me a long story.' }] });

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  socket: Socket;
  /** The body so far (a stream's events arrive one by one). */
  text: () => string;
  ended: Promise<void>;
}

/** A request on a keep-alive agent, so the connection outlives it unless the server closes it. */
function request(agent: http.Agent, url: string, path: string, method: string, key: string, body?: unknown): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${url}${path}`, { method, agent, headers: { ...auth(key), ...(body ? { 'content-type': 'application/json' } : {}) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      const ended = once(res, 'end').then(() => undefined);
      ended.catch(() => undefined); // awaited by the test; a failure shows there, not as an unhandled rejection
      resolve({ status: res.statusCode ?? 0, headers: res.headers, socket: res.socket as Socket, text: () => text, ended });
    });
    req.on('error', reject);
    req.end(body ? JSON.stringify(body) : undefined);
  });
}

const closed = (socket: Socket) => (socket.destroyed ? Promise.resolve() : once(socket, 'close').then(() => undefined));

describe('graceful shutdown', () => {
  let sim: SimServer | undefined;
  let gw: TestGateway | undefined;
  const agent = new http.Agent({ keepAlive: true });
  afterEach(async () => {
    await gw?.close();
    await sim?.close();
    gw = undefined;
    sim = undefined;
  });

  it('closes keep-alive connections, idle at once and busy after their answer, without waiting for the grace period', async () => {
    sim = await startSim({
      ...FAST_MODELS,
      // Answers that are still on their way when the shutdown begins.
      'sim-slow': { type: 'chat', ttftMs: { median: 1500, p95: 1500 }, tokensPerSecond: 0, outputTokens: { min: 4, max: 8 }, dimensions: 64 },
      'sim-drip': { type: 'chat', ttftMs: { median: 0, p95: 0 }, tokensPerSecond: 20, outputTokens: { min: 30, max: 30 }, dimensions: 64 },
    });
    gw = await startGateway(
      httpSimConfig({ up: sim }, { 'sim-slow': { deployments: [{ provider: 'up' }] }, 'sim-drip': { deployments: [{ provider: 'up' }] } }, { server: { shutdownGraceMs: HOUR } }),
    );
    const { url, apiKey } = gw;
    // An idle keep-alive connection: its request was answered before the shutdown.
    const idle = await request(agent, url, '/v1/models', 'GET', apiKey);
    await idle.ended;
    expect(idle.status).toBe(200);
    expect(idle.socket.destroyed).toBe(false);
    // A JSON answer and a stream in flight when the shutdown begins (the stream has sent its head, with keep-alive).
    const json = request(agent, url, '/v1/chat/completions', 'POST', apiKey, chat('sim-slow', false));
    const stream = await request(agent, url, '/v1/chat/completions', 'POST', apiKey, chat('sim-drip', true));
    expect(stream.headers['connection']).toBe('keep-alive');
    await vi.waitFor(() => expect(sim!.engine.stats().inFlight).toBe(2), { timeout: 10_000, interval: 5 });

    // With an hour of grace, close() resolves only because no connection is left open.
    await gw.gateway.close();
    await closed(idle.socket);
    const answered = await json;
    await answered.ended;
    expect(answered.status).toBe(200);
    expect(answered.headers['connection']).toBe('close');
    await closed(answered.socket);
    await stream.ended;
    expect(stream.text()).toContain('data: [DONE]');
    await closed(stream.socket);
  });

  it('cuts a stream still open at the grace deadline with an SSE error event, recorded as cut by the shutdown', async () => {
    sim = await startSim({
      ...FAST_MODELS,
      // One token a second for over an hour: only the grace deadline ends it.
      'sim-endless': { type: 'chat', ttftMs: { median: 0, p95: 0 }, tokensPerSecond: 1, outputTokens: { min: 5000, max: 5000 }, dimensions: 64 },
    });
    const raw = httpSimConfig({ up: sim }, { 'sim-endless': { deployments: [{ provider: 'up' }] } }, { server: { shutdownGraceMs: 300 } });
    gw = await startGateway(raw);
    const { url, apiKey, adminKey } = gw;
    const stream = await request(agent, url, '/v1/chat/completions', 'POST', apiKey, chat('sim-endless', true));
    expect(stream.status).toBe(200);
    await vi.waitFor(() => expect(stream.text()).toContain('data: {'), { timeout: 10_000, interval: 5 });
    const requestId = stream.headers['x-request-id'] as string;

    await gw.gateway.close();
    await stream.ended; // ended cleanly (a cut socket would be an error on the response)
    const events = stream
      .text()
      .split('\n\n')
      .filter((e) => e.startsWith('data: '))
      .map((e) => e.slice(6));
    expect(events).not.toContain('[DONE]');
    expect(JSON.parse(events.at(-1)!)).toMatchObject({ error: { code: 'shutting_down', type: 'server_error' } });

    // Recorded as cut by the shutdown (503 shutting_down), in the request log and the ledger.
    const dir = gw.gateway.config.storage.dir;
    const reopened = await startGateway({ ...raw, storage: { kind: 'embedded', dir }, auth: { bootstrap: false } });
    gw = reopened;
    const res = await fetch(`${reopened.url}/admin/v1/requests?limit=100`, { headers: auth(adminKey) });
    const row = ((await res.json()) as any).data.find((r: any) => r.request_id === requestId);
    expect(row).toMatchObject({ status: 503, error_code: 'shutting_down', stream: true });
    expect(row.completion_tokens).toBeGreaterThan(0); // billed for what was streamed
    expect((await reopened.gateway.storage.ledger.get(row.id))?.status).toBe(503);
  });
});
