import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { SimServer } from '../../src/providers/simulated/server.js';
import type { Provider } from '../../src/providers/types.js';
import { FAST_MODELS, type TestGateway, auth, httpSimConfig, postJson, startGateway, startSim } from '../helpers/gateway.js';
import { type WebhookReceiver, startWebhookReceiver } from '../helpers/webhook-receiver.js';

const question = (model = 'fast', content = 'Summarize the plot of Hamlet in two lines.') => ({
  model,
  messages: [{ role: 'user', content }],
});

async function getJson(url: string, key: string): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(url, { headers: auth(key) });
  return { status: res.status, headers: res.headers, body: await res.json() };
}

/** Polls the job until `done` says so (the timeout only bounds a failure). */
async function waitForJob(gw: TestGateway, id: string, done: (job: any) => boolean = (j) => !['queued', 'running'].includes(j.status), timeoutMs = 10_000): Promise<any> {
  let job: any;
  await vi.waitFor(
    async () => {
      job = (await getJson(`${gw.url}/v1/jobs/${id}`, gw.apiKey)).body;
      if (!done(job)) throw new Error(`job ${id} still ${job.status}`);
    },
    { timeout: timeoutMs, interval: 5 },
  );
  return job;
}

const waitUntil = (check: () => void | Promise<void>) => vi.waitFor(check, { timeout: 10_000, interval: 5 });

/**
 * Holds the provider's chat calls (JSON and streams) at a gate until `open()`: an upstream that
 * answers exactly when the test says (a call aborted meanwhile ends at once). `held` counts the
 * calls waiting there.
 */
function holdCalls(provider: Provider) {
  const { chat, chatStream } = provider;
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const state = { held: 0 };
  const wait = (signal: AbortSignal) => {
    state.held++;
    return new Promise<void>((resolve, reject) => {
      if (signal.aborted) return reject(signal.reason);
      signal.addEventListener('abort', () => reject(signal.reason), { once: true });
      void gate.then(resolve);
    }).finally(() => state.held--);
  };
  provider.chat = async (req, opts) => {
    await wait(opts.signal);
    return chat.call(provider, req, opts);
  };
  provider.chatStream = async (req, opts) => {
    await wait(opts.signal);
    return chatStream.call(provider, req, opts);
  };
  return {
    state,
    open() {
      provider.chat = chat;
      provider.chatStream = chatStream;
      release();
    },
  };
}

/** Opens a job's SSE events: once this resolves (headers in), the stream is subscribed to the job. */
async function openEvents(url: string, key: string): Promise<Response> {
  const res = await fetch(url, { headers: auth(key) });
  expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
  return res;
}

/** Reads a job's SSE events until the stream ends. */
async function readEvents(url: string, key: string): Promise<Array<{ event: string; data: any }>> {
  return parseEvents(await (await openEvents(url, key)).text());
}

function parseEvents(text: string): Array<{ event: string; data: any }> {
  const out: Array<{ event: string; data: any }> = [];
  for (const block of text.split('\n\n')) {
    const event = block.match(/^event: (.*)$/m)?.[1];
    const data = block.match(/^data: (.*)$/m)?.[1];
    if (event && data) out.push({ event, data: JSON.parse(data) });
  }
  return out;
}

describe('async jobs through the gateway (embedded)', () => {
  let sim: SimServer;
  let gw: TestGateway;
  let receiver: WebhookReceiver;

  beforeAll(async () => {
    sim = await startSim({
      ...FAST_MODELS,
      'sim-slow': { type: 'chat', ttftMs: { median: 0, p95: 0 }, tokensPerSecond: 40, outputTokens: { min: 30, max: 30 }, dimensions: 64 },
    });
    gw = await startGateway(
      httpSimConfig(
        { sim },
        {
          fast: { deployments: [{ provider: 'sim', model: 'sim-small' }], price: { input: 1, output: 2 } },
          slow: { deployments: [{ provider: 'sim', model: 'sim-slow' }] },
          embed: { type: 'embedding', deployments: [{ provider: 'sim', model: 'sim-embed' }] },
        },
        {
          resilience: { retry: { maxRetries: 0, baseDelayMs: 1, maxDelayMs: 2 }, breaker: { failureThreshold: 1000 } },
          jobs: {
            maxAttempts: 2,
            retry: { baseDelayMs: 10, maxDelayMs: 20 },
            pollMs: 50,
            webhooks: { allowLoopback: true, baseDelayMs: 20, maxDelayMs: 50 },
          },
        },
      ),
    );
    const secret = await fetch(`${gw.url}/admin/v1/tenants/${gw.tenantId}/webhook-secret`, { headers: auth(gw.adminKey) }).then((r) => r.json());
    expect(secret.secret).toMatch(/^whsec_[0-9a-f]{64}$/);
    receiver = await startWebhookReceiver({ secret: secret.secret });
  });
  afterAll(async () => {
    await gw.close();
    await sim.close();
    await receiver.close();
  });

  it('accepts a job with 202, runs it, and returns the completion with usage and cost', async () => {
    const res = await postJson(`${gw.url}/v1/jobs`, { body: question(), metadata: { purpose: 'first' } }, auth(gw.apiKey));
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ object: 'job', status: 'queued', model: 'fast', endpoint: '/v1/chat/completions', priority: 'normal' });
    expect(res.body.id).toMatch(/^job_[0-9a-f]{24}$/);
    expect(res.headers.get('location')).toBe(`/v1/jobs/${res.body.id}`);
    expect(res.body.status_url).toBe(`/v1/jobs/${res.body.id}`);
    const job = await waitForJob(gw, res.body.id);
    expect(job.status).toBe('succeeded');
    expect(job.attempts).toBe(1);
    expect(job.result.object).toBe('chat.completion');
    expect(job.result.choices[0].message.content.length).toBeGreaterThan(0);
    expect(job.usage.prompt_tokens).toBe(job.result.usage.prompt_tokens);
    const expected = (job.result.usage.prompt_tokens * 1 + job.result.usage.completion_tokens * 2) / 1e6;
    expect(Number(job.cost_usd)).toBeCloseTo(expected, 12);
    expect(job.metadata).toEqual({ purpose: 'first' });
  });

  it('bills a job once in the ledger, under the job id, with the job\'s cost', async () => {
    const res = await postJson(`${gw.url}/v1/jobs`, { body: question() }, auth(gw.apiKey));
    const job = await waitForJob(gw, res.body.id);
    await gw.gateway.ledger.flush();
    const event = await gw.gateway.storage.ledger.get(job.id);
    expect(event).toMatchObject({ requestId: job.id, route: '/v1/jobs', status: 200, promptTokens: job.usage.prompt_tokens, completionTokens: job.usage.completion_tokens });
    expect(event!.costPico / 1e12).toBeCloseTo(Number(job.cost_usd), 9);
  });

  it('runs embeddings jobs, and Prefer: respond-async turns a request into a job', async () => {
    const emb = await postJson(`${gw.url}/v1/jobs`, { endpoint: '/v1/embeddings', body: { model: 'embed', input: 'hello' } }, auth(gw.apiKey));
    expect(emb.status).toBe(202);
    const done = await waitForJob(gw, emb.body.id);
    expect(done.result.object).toBe('list');
    expect(done.result.data[0].embedding).toHaveLength(64);

    const res = await postJson(`${gw.url}/v1/chat/completions`, question(), { ...auth(gw.apiKey), prefer: 'respond-async', 'x-tollgate-priority': 'high' });
    expect(res.status).toBe(202);
    expect(res.headers.get('preference-applied')).toBe('respond-async');
    expect(res.body.priority).toBe('high');
    expect((await waitForJob(gw, res.body.id)).status).toBe('succeeded');
  });

  it('streams events: queued or started, token deltas, then completed with the result', async () => {
    // The run's upstream call waits at a gate until the follower is subscribed: the job cannot end first.
    const hold = holdCalls(gw.gateway.providers.get('sim'));
    let events: Array<{ event: string; data: any }>;
    let res: Awaited<ReturnType<typeof postJson>>;
    try {
      res = await postJson(`${gw.url}/v1/jobs`, { body: question('slow') }, auth(gw.apiKey));
      await waitUntil(() => expect(hold.state.held).toBe(1));
      const following = await openEvents(`${gw.url}/v1/jobs/${res.body.id}/events`, gw.apiKey);
      hold.open();
      events = parseEvents(await following.text());
    } finally {
      hold.open();
    }
    const names = events.map((e) => e.event);
    expect(names[0]).toBe('started'); // it was running when the follower came
    expect(names).toContain('delta');
    expect(names.at(-1)).toBe('completed');
    const completed = events.at(-1)!.data;
    expect(completed.status).toBe('succeeded');
    const streamed = events.filter((e) => e.event === 'delta').map((e) => e.data.content).join('');
    expect(streamed).toBe(completed.result.choices[0].message.content);
    // A finished job's stream sends `completed` at once and ends.
    const again = await readEvents(`${gw.url}/v1/jobs/${res.body.id}/events`, gw.apiKey);
    expect(again.map((e) => e.event)).toEqual(['completed']);
  });

  it('posts the result to the webhook, signed, once, with a delivery log', async () => {
    const before = receiver.deliveries.length;
    const res = await postJson(`${gw.url}/v1/jobs`, { body: question(), webhook_url: receiver.url }, auth(gw.apiKey));
    const [delivery] = (await receiver.waitFor(before + 1)).slice(before);
    expect(delivery!.signatureValid).toBe(true);
    expect(delivery!.event).toBe('job.succeeded');
    expect(delivery!.body.data.id).toBe(res.body.id);
    expect(delivery!.body.data.result.object).toBe('chat.completion');
    expect(delivery!.webhookId).toContain(res.body.id);
    const log = await waitForJob(gw, res.body.id, (j) => j.webhook?.state === 'delivered');
    expect(log.webhook.attempts).toBe(1);
    const deliveries = await getJson(`${gw.url}/v1/jobs/${res.body.id}/deliveries`, gw.apiKey);
    expect(deliveries.body.data).toEqual([expect.objectContaining({ attempt: 1, status_code: 200, error: null })]);
  });

  it('retries a webhook the receiver refuses, with the same webhook-id', async () => {
    receiver.failNext(2, 503);
    const before = receiver.deliveries.length;
    const res = await postJson(`${gw.url}/v1/jobs`, { body: question(), webhook_url: receiver.url }, auth(gw.apiKey));
    const three = (await receiver.waitFor(before + 3)).slice(before);
    expect(three.map((d) => d.status)).toEqual([503, 503, 200]);
    expect(new Set(three.map((d) => d.webhookId)).size).toBe(1);
    const job = await waitForJob(gw, res.body.id, (j) => j.webhook?.state === 'delivered');
    expect(job.webhook.attempts).toBe(3);
  });

  it('cancels a running job: it ends cancelled, its upstream call is stopped, and it cannot be cancelled again after it ended', async () => {
    const aborted = sim.engine.stats().aborted;
    sim.engine.script([{ kind: 'hang' }]); // the run's upstream call never answers: only the cancel ends it
    const res = await postJson(`${gw.url}/v1/jobs`, { body: question('slow') }, auth(gw.apiKey));
    await waitForJob(gw, res.body.id, (j) => j.status === 'running');
    await waitUntil(() => expect(sim.engine.scriptedLeft).toBe(0)); // its call reached upstream
    const del = await fetch(`${gw.url}/v1/jobs/${res.body.id}`, { method: 'DELETE', headers: auth(gw.apiKey) });
    expect(del.status).toBe(200);
    expect((await del.json()).status).toBe('cancelled');
    // The upstream call was stopped, and the worker is done with the run: nothing can change the job now.
    await waitUntil(() => {
      expect(sim.engine.stats().aborted).toBe(aborted + 1);
      expect(gw.gateway.worker!.runningCount).toBe(0);
    });
    const job = await waitForJob(gw, res.body.id);
    expect(job.status).toBe('cancelled');
    expect(job.result).toBeNull();

    const done = await postJson(`${gw.url}/v1/jobs`, { body: question() }, auth(gw.apiKey));
    await waitForJob(gw, done.body.id);
    const late = await fetch(`${gw.url}/v1/jobs/${done.body.id}`, { method: 'DELETE', headers: auth(gw.apiKey) });
    expect(late.status).toBe(409);
  });

  it('expires a job that cannot finish before its deadline', async () => {
    sim.engine.script([{ kind: 'hang' }]); // its upstream call never answers: the deadline ends it
    try {
      const res = await postJson(`${gw.url}/v1/jobs`, { body: question(), deadline_at: Date.now() / 1000 + 0.3 }, auth(gw.apiKey));
      expect(res.status).toBe(202);
      const job = await waitForJob(gw, res.body.id);
      expect(job.status).toBe('expired');
      expect(job.error.code).toBe('deadline_exceeded');
    } finally {
      sim.engine.reset(); // the hang is left queued if the job was only claimed after its deadline
    }
  });

  it('dead-letters a job after maxAttempts retryable failures, keeping the last error', async () => {
    sim.engine.setFaults({ errorRate: { '500': 1 } });
    try {
      const res = await postJson(`${gw.url}/v1/jobs`, { body: question() }, auth(gw.apiKey));
      const job = await waitForJob(gw, res.body.id);
      expect(job.status).toBe('failed');
      expect(job.dead_lettered).toBe(true);
      expect(job.attempts).toBe(2);
      expect(job.error.status).toBeGreaterThanOrEqual(500);
    } finally {
      sim.engine.setFaults({});
      sim.engine.reset();
    }
  });

  it('fails at once, without retries, on an error that would happen again', async () => {
    sim.engine.script([{ kind: 'error', status: 400 }]);
    const res = await postJson(`${gw.url}/v1/jobs`, { body: question() }, auth(gw.apiKey));
    const job = await waitForJob(gw, res.body.id);
    expect(job.status).toBe('failed');
    expect(job.dead_lettered).toBe(false);
    expect(job.attempts).toBe(1);
  });

  it('returns the same job for a retried submit with the same Idempotency-Key', async () => {
    const headers = { ...auth(gw.apiKey), 'idempotency-key': `idem-${Date.now()}` };
    const a = await postJson(`${gw.url}/v1/jobs`, { body: question() }, headers);
    const b = await postJson(`${gw.url}/v1/jobs`, { body: question() }, headers);
    expect(a.status).toBe(202);
    expect(b.body.id).toBe(a.body.id);
  });

  it('refuses bad submissions with the field named', async () => {
    const cases: Array<[unknown, number, string]> = [
      [{ body: question(), webhookUrl: 'x' }, 400, 'webhookUrl'],
      [{ body: { model: 'fast' } }, 400, 'body.messages'],
      [{ body: question('nope') }, 404, 'body.model'],
      [{ body: question(), webhook_url: 'http://10.0.0.7/hook' }, 400, 'webhook_url'],
      [{ body: question(), webhook_url: 'ftp://example.com/x' }, 400, 'webhook_url'],
      [{ body: question(), deadline_at: 1 }, 400, 'deadline_at'],
      [{ body: question(), priority: 'urgent' }, 400, 'priority'],
      [{ endpoint: '/v1/embeddings', body: question() }, 400, 'body.input'],
    ];
    for (const [body, status, param] of cases) {
      const res = await postJson(`${gw.url}/v1/jobs`, body, auth(gw.apiKey));
      expect({ status: res.status, param: res.body.error?.param }).toEqual({ status, param });
    }
  });

  it('lists the caller\'s jobs newest first with filters and cursor pagination; other tenants see none of them', async () => {
    const tag = `t${Date.now()}`;
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await postJson(`${gw.url}/v1/jobs`, { body: question(), metadata: { tag } }, auth(gw.apiKey))).body.id);
    await Promise.all(ids.map((id) => waitForJob(gw, id)));
    const page1 = await getJson(`${gw.url}/v1/jobs?limit=3&metadata.tag=${tag}`, gw.apiKey);
    expect(page1.body.data.map((j: any) => j.id)).toEqual(ids.slice().reverse().slice(0, 3));
    expect(page1.body.has_more).toBe(true);
    const page2 = await getJson(`${gw.url}/v1/jobs?limit=3&metadata.tag=${tag}&after=${page1.body.last_id}`, gw.apiKey);
    expect(page2.body.data.map((j: any) => j.id)).toEqual(ids.slice().reverse().slice(3));
    expect(page2.body.has_more).toBe(false);
    const failed = await getJson(`${gw.url}/v1/jobs?status=succeeded&metadata.tag=${tag}`, gw.apiKey);
    expect(failed.body.data).toHaveLength(5);
    expect((await getJson(`${gw.url}/v1/jobs?limit=0`, gw.apiKey)).body.error.param).toBe('limit');

    const tenant = await postJson(`${gw.url}/admin/v1/tenants`, { name: 'other' }, auth(gw.adminKey));
    const key = await postJson(`${gw.url}/admin/v1/keys`, { tenant_id: tenant.body.id }, auth(gw.adminKey));
    const other = key.body.key as string;
    expect((await getJson(`${gw.url}/v1/jobs/${ids[0]}`, other)).status).toBe(404);
    expect((await getJson(`${gw.url}/v1/jobs?metadata.tag=${tag}`, other)).body.data).toEqual([]);
    const del = await fetch(`${gw.url}/v1/jobs/${ids[0]}`, { method: 'DELETE', headers: auth(other) });
    expect(del.status).toBe(404);
  });

  it('exports queue depth, oldest age and throughput by priority in /metrics', async () => {
    const text = await fetch(`${gw.url}/metrics`).then((r) => r.text());
    expect(text).toMatch(/tollgate_jobs_finished_total\{priority="4",status="succeeded"\} \d+/);
    expect(text).toContain('# TYPE tollgate_jobs_queue_depth gauge');
    expect(text).toContain('# TYPE tollgate_jobs_oldest_age_seconds gauge');
    expect(text).toMatch(/tollgate_jobs_submitted_total\{priority="4"\} \d+/);
  });
});

describe('async jobs on shutdown', () => {
  let sim: SimServer;
  beforeAll(async () => {
    sim = await startSim({
      'sim-slow': { type: 'chat', ttftMs: { median: 0, p95: 0 }, tokensPerSecond: 40, outputTokens: { min: 40, max: 40 }, dimensions: 8 },
    });
  });
  afterAll(() => sim.close());

  const config = (dir: string, graceMs: number, bootstrap = true) =>
    httpSimConfig({ sim }, { slow: { deployments: [{ provider: 'sim', model: 'sim-slow' }] } }, {
      storage: { kind: 'embedded', dir },
      server: { shutdownGraceMs: graceMs },
      auth: { bootstrap },
      jobs: { concurrency: 2, pollMs: 50 },
    });

  it('finishes running jobs within the grace period', async () => {
    const gw = await startGateway(config(mkdtempSync(join(tmpdir(), 'tg-jobs-')), 30_000));
    // The run's upstream call waits at a gate, released only once the shutdown has begun.
    const hold = holdCalls(gw.gateway.providers.get('sim'));
    const res = await postJson(`${gw.url}/v1/jobs`, { body: question('slow') }, auth(gw.apiKey));
    await waitUntil(() => expect(hold.state.held).toBe(1));
    expect((await getJson(`${gw.url}/v1/jobs/${res.body.id}`, gw.apiKey)).body.status).toBe('running');
    const closing = gw.gateway.close();
    hold.open();
    await closing;
    // The store closed with the gateway: reopen the folder to read what it left.
    const again = await startGateway(config(gw.gateway.config.storage.dir, 5_000, false));
    try {
      const stored = await again.gateway.storage.jobs.get(res.body.id);
      expect(stored?.status).toBe('succeeded');
      expect(stored?.attempts).toBe(1);
    } finally {
      await again.close();
    }
  });

  it('hands running jobs back to the queue after the grace period, ends event streams, and a restart completes them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tg-jobs-'));
    const gw = await startGateway(config(dir, 200));
    // The two runs' upstream calls never answer: only the end of the grace period can stop them
    // (a shutdown that waited for them would not end at all).
    sim.engine.reset();
    sim.engine.script([{ kind: 'hang' }, { kind: 'hang' }]);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await postJson(`${gw.url}/v1/jobs`, { body: question('slow', `Story ${i}`) }, auth(gw.apiKey))).body.id);
    await waitForJob(gw, ids[0]!, (j) => j.status === 'running');
    await waitUntil(() => expect(sim.engine.stats().inFlight).toBe(2)); // both slots (concurrency 2) hang upstream
    const following = (await openEvents(`${gw.url}/v1/jobs/${ids[0]}/events`, gw.apiKey)).text();
    await gw.gateway.close();
    await waitUntil(() => expect(sim.engine.stats().aborted).toBe(2)); // the hanging calls were dropped
    const events = parseEvents(await following); // the stream was ended by the shutdown
    expect(events[0]?.event).toBe('started');
    expect(events.map((e) => e.event)).not.toContain('completed');

    const again = await startGateway(config(dir, 5_000, false));
    try {
      for (const id of ids) {
        const stored = await again.gateway.storage.jobs.get(id);
        expect(['queued', 'running']).toContain(stored?.status);
      }
      const key = { ...again, apiKey: gw.apiKey };
      for (const id of ids) {
        const job = await waitForJob(key, id);
        expect(job.status).toBe('succeeded');
        expect(job.attempts).toBe(1); // the handed-back run was not counted
      }
    } finally {
      await again.close();
    }
  });
});

describe('jobs under the tenant\'s rate limit', () => {
  it('waits for the key\'s rate limit without spending attempts; each refused run is billed as its own ledger event', async () => {
    // Buckets refill, and refused jobs become due again, by Date.now(): a fake Date (real timers
    // and sockets) that only this test moves, so the bucket stays empty until it says.
    vi.useFakeTimers({ toFake: ['Date'] });
    const sim = await startSim();
    const gw = await startGateway(
      httpSimConfig({ sim }, { fast: { deployments: [{ provider: 'sim', model: 'sim-small' }] } }, {
        tiers: { standard: { limits: { key: { requestsPerMinute: 60 } } } },
        jobs: { maxAttempts: 1, pollMs: 20 },
      }),
    );
    try {
      const key = (await postJson(`${gw.url}/admin/v1/keys`, { tenant_id: gw.tenantId }, auth(gw.adminKey))).body.key as string;
      // Empty the key's bucket (60 requests, refilled at one a second of the clock, which stands still).
      for (let i = 0; i < 60; i++) expect((await postJson(`${gw.url}/v1/chat/completions`, question(), auth(key))).status).toBe(200);
      expect((await postJson(`${gw.url}/v1/chat/completions`, question(), auth(key))).status).toBe(429);
      vi.setSystemTime(Date.now() + 1); // the jobs' ledger events come after those requests' (1/1000 of a request refilled)
      const from = Date.now();
      const ids: string[] = [];
      for (let i = 0; i < 2; i++) ids.push((await postJson(`${gw.url}/v1/jobs`, { body: question('fast', `Limited ${i}`) }, auth(key))).body.id);
      const started = async () => {
        const metrics = await fetch(`${gw.url}/metrics`).then((r) => r.text());
        return [...metrics.matchAll(/^tollgate_jobs_started_total\{[^}]*\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
      };
      // Each job runs once, is refused by the empty bucket and handed back to the queue.
      await waitUntil(async () => {
        expect(await started()).toBe(2);
        for (const id of ids) expect((await getJson(`${gw.url}/v1/jobs/${id}`, key)).body).toMatchObject({ status: 'queued', attempts: 0 });
      });
      // A minute later the bucket is full again: both run, and succeed.
      vi.setSystemTime(Date.now() + 60_000);
      for (const id of ids) {
        const job = await waitForJob(gw, id);
        // One attempt allowed: a refusal that spent it would have failed the job.
        expect(job).toMatchObject({ status: 'succeeded', attempts: 1 });
      }
      await gw.settled();
      for (const id of ids) expect(await gw.gateway.storage.ledger.get(id)).toMatchObject({ status: 200, route: '/v1/jobs' });
      const [row] = await gw.gateway.storage.ledger.aggregate({ from, to: Date.now() + 1, groupBy: [], keyId: (await gw.gateway.storage.ledger.get(ids[0]!))!.keyId });
      // Every run started is in the ledger: the two refused ones and the two that succeeded, none
      // merged away under a shared id.
      expect(await started()).toBe(4);
      expect(row).toMatchObject({ requests: 4, errors: 2 });
    } finally {
      await gw.close();
      await sim.close();
      vi.useRealTimers();
    }
  });
});

describe('job worker limits', () => {
  it('runs at most providerConcurrency jobs at once against one provider, and refuses a body over jobs.maxBodyBytes', async () => {
    const sim = await startSim({
      'sim-slow': { type: 'chat', ttftMs: { median: 0, p95: 0 }, tokensPerSecond: 100, outputTokens: { min: 20, max: 20 }, dimensions: 8 },
    });
    const other = await startSim();
    const gw = await startGateway(
      httpSimConfig(
        { sim, other },
        { slow: { deployments: [{ provider: 'sim', model: 'sim-slow' }] }, quick: { deployments: [{ provider: 'other', model: 'sim-small' }] } },
        { jobs: { concurrency: 8, providerConcurrency: 2, pollMs: 20, maxBodyBytes: 2_000 } },
      ),
    );
    // The most calls the simulator ever had at once, counted as each arrives (no sampling).
    let most = 0;
    const begin = sim.engine.begin.bind(sim.engine);
    sim.engine.begin = (body) => {
      const tracker = begin(body);
      most = Math.max(most, sim.engine.stats().inFlight);
      return tracker;
    };
    // The provider's calls wait at a gate: the first two jobs hold their slots until it opens.
    const hold = holdCalls(gw.gateway.providers.get('sim'));
    try {
      const ids: string[] = [];
      for (let i = 0; i < 6; i++) ids.push((await postJson(`${gw.url}/v1/jobs`, { body: question('slow', `Question ${i}`) }, auth(gw.apiKey))).body.id);
      await waitUntil(() => expect(hold.state.held).toBe(2));
      // A job for another provider, queued behind the four waiting ones (same tenant and priority:
      // FIFO would run them first), runs: the worker passed them over because their provider is full.
      const quick = await postJson(`${gw.url}/v1/jobs`, { body: question('quick') }, auth(gw.apiKey));
      expect((await waitForJob(gw, quick.body.id)).status).toBe('succeeded');
      const states = await Promise.all(ids.map(async (id) => (await getJson(`${gw.url}/v1/jobs/${id}`, gw.apiKey)).body.status));
      expect(states).toEqual(['running', 'running', 'queued', 'queued', 'queued', 'queued']);
      expect(hold.state.held).toBe(2);
      hold.open();
      for (const id of ids) expect((await waitForJob(gw, id)).status).toBe('succeeded');
      expect(most).toBe(2);

      const big = await postJson(`${gw.url}/v1/jobs`, { body: question('slow', 'x'.repeat(3_000)) }, auth(gw.apiKey));
      expect(big.status).toBe(413);
      expect(big.body.error.message).toContain('jobs.maxBodyBytes');
    } finally {
      hold.open();
      await gw.close();
      await sim.close();
      await other.close();
    }
  });
});
