import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { SimServer } from '../../src/providers/simulated/server.js';
import type { Provider } from '../../src/providers/types.js';
import {
  FAST_MODELS,
  type TestGateway,
  auth,
  hello,
  httpSimConfig,
  postJson,
  postStream,
  startGateway,
  startSim,
} from '../helpers/gateway.js';

const CHAT = '/v1/chat/completions';

/** POSTs with node:http, which exposes HTTP trailers (fetch does not). */
function postRaw(url: string, body: unknown, headers: Record<string, string>): Promise<{ text: string; trailers: Record<string, string | undefined> }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ text, trailers: { ...res.trailers } }));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}
let keyCounter = 0;
/** A fresh Idempotency-Key per test. */
const newKey = () => `idem-${process.pid}-${++keyCounter}-${Math.random().toString(36).slice(2)}`;

/**
 * Holds the provider's (non-stream) chat calls at a gate until `open()`: an upstream that answers
 * exactly when the test says. `held` counts the calls waiting there.
 */
function holdChat(provider: Provider) {
  const chat = provider.chat;
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const state = { held: 0 };
  provider.chat = async (req, opts) => {
    state.held++;
    await new Promise<void>((resolve, reject) => {
      opts.signal.addEventListener('abort', () => reject(opts.signal.reason), { once: true });
      void gate.then(resolve);
    }).finally(() => state.held--);
    return chat.call(provider, req, opts);
  };
  return {
    state,
    open() {
      provider.chat = chat;
      release();
    },
  };
}

const waitUntil = (check: () => void | Promise<void>) => vi.waitFor(check, { timeout: 10_000, interval: 5 });

const models = {
  chat: { deployments: [{ provider: 'sim', model: 'sim-small' }], price: { input: 0.15, output: 0.6 } },
  trickle: { deployments: [{ provider: 'sim', model: 'sim-trickle' }], price: { input: 0.15, output: 0.6 } },
};
const simModels = {
  ...FAST_MODELS,
  // 40 tokens at 1 a second: a stream of it cannot end on its own during a test (made instant when a test needs it whole).
  'sim-trickle': { ...FAST_MODELS['sim-small']!, tokensPerSecond: 1, outputTokens: { min: 40, max: 40 } },
};

describe('Idempotency-Key on POST', () => {
  let sim: SimServer;
  let gw: TestGateway;

  beforeAll(async () => {
    sim = await startSim(simModels);
    gw = await startGateway(httpSimConfig({ sim }, models, { resilience: { retry: { maxRetries: 0 } } }));
  });
  afterAll(async () => {
    await gw.close();
    await sim.close();
  });

  /** Requests that reached the simulator. */
  const executed = () => sim.engine.stats().total;
  /** Requests the ledger holds for the bootstrap tenant, once every request so far has settled. */
  async function billed(): Promise<number> {
    await gw.settled();
    const rows = await gw.gateway.storage.ledger.aggregate({ from: 0, to: Date.now() + 1, groupBy: [], tenantId: gw.tenantId });
    return rows[0]?.requests ?? 0;
  }
  const post = (body: unknown, key: string | undefined, apiKey = gw.apiKey) =>
    postJson(`${gw.url}${CHAT}`, body, { ...auth(apiKey), ...(key === undefined ? {} : { 'idempotency-key': key }) });

  it('replays the first answer to the same key and body, byte for byte, billed once', async () => {
    const key = newKey();
    const [ran, charged] = [executed(), await billed()];
    const first = await fetch(`${gw.url}${CHAT}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...auth(gw.apiKey), 'idempotency-key': key },
      body: JSON.stringify(hello('chat')),
    });
    const firstText = await first.text();
    expect(first.status).toBe(200);
    expect(first.headers.get('x-tollgate-idempotent-replay')).toBeNull();

    const again = await fetch(`${gw.url}${CHAT}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...auth(gw.apiKey), 'idempotency-key': key },
      body: JSON.stringify(hello('chat')),
    });
    expect(again.status).toBe(200);
    expect(await again.text()).toBe(firstText);
    expect(again.headers.get('x-tollgate-idempotent-replay')).toBe('true');
    for (const h of ['content-type', 'x-request-id', 'x-tollgate-model', 'x-tollgate-provider', 'x-tollgate-attempts', 'x-tollgate-cost-usd']) {
      expect(again.headers.get(h), h).toBe(first.headers.get(h));
    }
    expect(first.headers.get('x-tollgate-cost-usd')).toMatch(/^0\.\d+$/);
    expect(executed() - ran).toBe(1);
    expect((await billed()) - charged).toBe(1);
  });

  it('refuses the same key with a different body (422) without running it', async () => {
    const key = newKey();
    expect((await post(hello('chat'), key)).status).toBe(200);
    const ran = executed();
    const other = await post(hello('chat', { messages: [{ role: 'user', content: 'Something else entirely' }] }), key);
    expect(other.status).toBe(422);
    expect(other.body.error).toMatchObject({ code: 'idempotency_key_reused', type: 'invalid_request_error' });
    expect(other.body.error.message).toMatch(/Idempotency-Key/);
    expect(executed()).toBe(ran);
  });

  it('runs one of two concurrent duplicates; the other gets 409 with Retry-After, then the replay', async () => {
    const key = newKey();
    const [ran, charged] = [executed(), await billed()];
    // The first one's upstream call waits at a gate: it is certainly still running when the duplicate comes.
    const hold = holdChat(gw.gateway.providers.get('sim'));
    const first = post(hello('chat'), key);
    await waitUntil(() => expect(hold.state.held).toBe(1));
    const duplicate = await post(hello('chat'), key);
    expect(duplicate.status).toBe(409);
    expect(duplicate.body.error.code).toBe('idempotency_key_in_progress');
    expect(duplicate.headers.get('retry-after')).toBe('1');
    hold.open();
    const winner = await first;
    expect(winner.status).toBe(200);
    expect(winner.headers.get('x-tollgate-idempotent-replay')).toBeNull();
    const later = await post(hello('chat'), key);
    expect(later.headers.get('x-tollgate-idempotent-replay')).toBe('true');
    expect(later.body).toEqual(winner.body);
    expect(executed() - ran).toBe(1);
    expect((await billed()) - charged).toBe(1);
  });

  it('does not store a 5xx: a retry with the same key runs again', async () => {
    const key = newKey();
    const ran = executed();
    sim.engine.script([{ kind: 'error', status: 500 }]);
    const failed = await post(hello('chat'), key);
    expect(failed.status).toBe(502);
    const retried = await post(hello('chat'), key);
    expect(retried.status).toBe(200);
    expect(retried.headers.get('x-tollgate-idempotent-replay')).toBeNull();
    expect(executed() - ran).toBe(2);
    const third = await post(hello('chat'), key);
    expect(third.headers.get('x-tollgate-idempotent-replay')).toBe('true');
    expect(third.body).toEqual(retried.body);
  });

  it('stores a final 4xx and replays it', async () => {
    const key = newKey();
    const first = await post(hello('no-such-model'), key);
    expect(first.status).toBe(404);
    const again = await post(hello('no-such-model'), key);
    expect(again.status).toBe(404);
    expect(again.headers.get('x-tollgate-idempotent-replay')).toBe('true');
    expect(again.body).toEqual(first.body);
  });

  it('replays a stream as the same SSE transcript, billed once', async () => {
    const key = newKey();
    const [ran, charged] = [executed(), await billed()];
    const body = hello('chat', { stream: true, stream_options: { include_usage: true } });
    const headers = { ...auth(gw.apiKey), 'idempotency-key': key };
    const first = await postStream(`${gw.url}${CHAT}`, body, headers);
    expect(first.status).toBe(200);
    expect(first.sawDone).toBe(true);
    const again = await postStream(`${gw.url}${CHAT}`, body, headers);
    expect(again.status).toBe(200);
    expect(again.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(again.headers.get('x-tollgate-idempotent-replay')).toBe('true');
    expect(again.headers.get('x-request-id')).toBe(first.headers.get('x-request-id'));
    expect(again.raw).toBe(first.raw);
    expect(again.sawDone).toBe(true);
    expect(again.events).toEqual(first.events);
    expect(again.events.at(-1).usage.completion_tokens).toBeGreaterThan(0);
    // The cost trailer is replayed as a trailer too.
    const original = await postRaw(`${gw.url}${CHAT}`, { ...body, seed: 5 }, { ...headers, 'idempotency-key': `${key}-t` });
    const replayed = await postRaw(`${gw.url}${CHAT}`, { ...body, seed: 5 }, { ...headers, 'idempotency-key': `${key}-t` });
    expect(original.trailers['x-tollgate-cost-usd']).toMatch(/^0\.\d+$/);
    expect(replayed.trailers['x-tollgate-cost-usd']).toBe(original.trailers['x-tollgate-cost-usd']);
    expect(replayed.text).toBe(original.text);
    expect(executed() - ran).toBe(2);
    expect((await billed()) - charged).toBe(2);
  });

  it('does not store a stream that failed after it started: a retry runs and gets a whole one', async () => {
    const key = newKey();
    const body = hello('chat', { stream: true });
    const headers = { ...auth(gw.apiKey), 'idempotency-key': key };
    sim.engine.script([{ kind: 'break', afterChunks: 2 }]);
    const broken = await postStream(`${gw.url}${CHAT}`, body, headers);
    expect(broken.sawDone).toBe(false);
    expect(broken.events.at(-1).error.code).toBe('upstream_error');
    const retried = await postStream(`${gw.url}${CHAT}`, body, headers);
    expect(retried.headers.get('x-tollgate-idempotent-replay')).toBeNull();
    expect(retried.sawDone).toBe(true);
    const replayed = await postStream(`${gw.url}${CHAT}`, body, headers);
    expect(replayed.headers.get('x-tollgate-idempotent-replay')).toBe('true');
    expect(replayed.raw).toBe(retried.raw);
  });

  it('releases the key of a stream the client abandoned, so a retry runs', async () => {
    const key = newKey();
    const controller = new AbortController();
    const res = await fetch(`${gw.url}${CHAT}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...auth(gw.apiKey), 'idempotency-key': key },
      body: JSON.stringify(hello('trickle', { stream: true })),
      signal: controller.signal,
    });
    const reader = res.body!.getReader();
    await reader.read(); // the stream has started (and would take 40 s to end)
    controller.abort();
    // From here the model answers at once: the retry's stream, once it runs, is whole.
    const trickle = sim.engine.models['sim-trickle']!;
    const tokensPerSecond = trickle.tokensPerSecond;
    trickle.tokensPerSecond = 0;
    let retry!: Awaited<ReturnType<typeof post>>;
    try {
      // 409 while the gateway has not yet seen the client leave; then the key is free and the retry runs.
      await waitUntil(async () => {
        retry = await post(hello('trickle', { stream: true }), key);
        expect(retry.status).not.toBe(409);
      });
    } finally {
      trickle.tokensPerSecond = tokensPerSecond;
    }
    expect(retry.status).toBe(200);
    expect(retry.headers.get('x-tollgate-idempotent-replay')).toBeNull();
    expect(String(retry.body)).toMatch(/data: \[DONE\]\n\n$/);
  });

  it('names the header when it is empty or too long, and accepts 255 printable characters', async () => {
    for (const bad of ['', 'k'.repeat(256)]) {
      const r = await post(hello('chat'), bad);
      expect(r.status).toBe(400);
      expect(r.body.error.message).toMatch(/Idempotency-Key/);
      expect(r.body.error.param).toBe('Idempotency-Key');
    }
    const ok = await post(hello('chat'), `${'k'.repeat(250)} ~!@#`);
    expect(ok.status).toBe(200);
  });

  it('scopes keys by API key: another tenant with the same key runs independently', async () => {
    const adminHeaders = auth(gw.adminKey);
    const tenant = await postJson(`${gw.url}/admin/v1/tenants`, { name: 'Other' }, adminHeaders);
    const created = await postJson(`${gw.url}/admin/v1/keys`, { tenant_id: tenant.body.id }, adminHeaders);
    const otherKey: string = created.body.key;

    const key = newKey();
    const ran = executed();
    const mine = await post(hello('chat', { seed: 1 }), key);
    const theirsSameBody = await post(hello('chat', { seed: 1 }), key, otherKey);
    expect(theirsSameBody.status).toBe(200);
    expect(theirsSameBody.headers.get('x-tollgate-idempotent-replay')).toBeNull();
    expect(theirsSameBody.headers.get('x-request-id')).not.toBe(mine.headers.get('x-request-id'));

    const key2 = newKey();
    await post(hello('chat'), key2);
    const theirsOtherBody = await post(hello('chat', { seed: 9 }), key2, otherKey);
    expect(theirsOtherBody.status).toBe(200); // not a 422: the key is theirs alone
    expect(executed() - ran).toBe(4);
  });

  it('works on admin POSTs, and a key-creating POST (a secret shown once) refuses the header', async () => {
    const key = newKey();
    const headers = { ...auth(gw.adminKey), 'idempotency-key': key };
    const first = await postJson(`${gw.url}/admin/v1/tenants`, { name: 'Once' }, headers);
    const again = await postJson(`${gw.url}/admin/v1/tenants`, { name: 'Once' }, headers);
    expect(first.status).toBe(201);
    expect(again.status).toBe(201);
    expect(again.body).toEqual(first.body);
    const tenants = await fetch(`${gw.url}/admin/v1/tenants`, { headers: auth(gw.adminKey) }).then((r) => r.json());
    expect(tenants.data.filter((t: { name: string }) => t.name === 'Once')).toHaveLength(1);

    const refused = await postJson(`${gw.url}/admin/v1/keys`, { tenant_id: first.body.id }, { ...auth(gw.adminKey), 'idempotency-key': newKey() });
    expect(refused.status).toBe(400);
    expect(refused.body.detail).toMatch(/Idempotency-Key is not supported on POST \/admin\/v1\/keys/);
  });
});

describe('Idempotency-Key expiry', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    // The TTL counts from the first request's start, by Date.now(): a fake Date (real timers and
    // sockets) that only the test moves, so the answer is kept exactly 400 ms of that clock.
    vi.useFakeTimers({ toFake: ['Date'] });
    gw = await startGateway({
      idempotency: { ttlMs: 400 },
      providers: { sim: { kind: 'simulated', models: FAST_MODELS } },
      models: { 'sim-small': { deployments: [{ provider: 'sim' }] } },
    });
  });
  afterAll(async () => {
    await gw.close();
    vi.useRealTimers();
  });

  it('forgets an answer after idempotency.ttlMs: the same key then runs again', async () => {
    const key = newKey();
    const send = () => postJson(`${gw.url}${CHAT}`, hello('sim-small'), { ...auth(gw.apiKey), 'idempotency-key': key });
    const first = await send();
    const replay = await send();
    expect(replay.headers.get('x-tollgate-idempotent-replay')).toBe('true');
    vi.setSystemTime(Date.now() + 399);
    expect((await send()).headers.get('x-tollgate-idempotent-replay')).toBe('true'); // still within the TTL
    vi.setSystemTime(Date.now() + 1);
    const later = await send();
    expect(later.status).toBe(200);
    expect(later.headers.get('x-tollgate-idempotent-replay')).toBeNull();
    expect(later.headers.get('x-request-id')).not.toBe(first.headers.get('x-request-id'));
    await gw.settled();
    expect((await gw.gateway.storage.ledger.aggregate({ from: 0, to: Date.now() + 1, groupBy: [] }))[0]?.requests).toBe(2);
  });
});
