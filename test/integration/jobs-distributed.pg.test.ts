/**
 * Async jobs in distributed mode: two gateway processes (A and B) on one PostgreSQL schema and one
 * Redis prefix share one job queue. Jobs submitted through either are drained by both, each run
 * once; a job's events are followed through the process that does not run it (Redis pub/sub and
 * the Redis delta list); a cancel through one stops the upstream call of the other (change bus);
 * both sign webhooks with the same per-tenant secret (jobs.webhooks.signingSecret).
 *
 * The simulator runs in this process: its engine is wrapped to count, per prompt (every job has
 * its own), the upstream calls and how many were in flight at once. The gateways reach it through
 * a gate (an HTTP proxy the test can close), so "both processes run jobs" and "the job is running"
 * are states the test holds, not moments it hopes to catch.
 */
import { type Server, createServer, request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { RawConfig } from '../../src/config/schema.js';
import type { SimRequestTracker } from '../../src/providers/simulated/engine.js';
import type { SimServer } from '../../src/providers/simulated/server.js';
import { FAST_MODELS, type PeerGateway, type TestGateway, auth, httpSimConfig, postJson, startGateway, startPeer, startSim } from '../helpers/gateway.js';
import { distributedStorage, dropDistributed, requireService, uniqueName } from '../helpers/services.js';
import { type WebhookReceiver, startWebhookReceiver } from '../helpers/webhook-receiver.js';

const redis = await requireService('redis');
const pg = await requireService('postgres');

type Gw = { url: string; gateway: TestGateway['gateway'] };

/** Upstream calls per prompt, as the simulator saw them. */
interface PromptCalls {
  calls: number;
  inFlight: number;
  maxInFlight: number;
  aborted: number;
  completed: number;
}

function promptOf(body: unknown): string {
  const messages = (body as { messages?: Array<{ content?: unknown }> } | undefined)?.messages;
  const content = messages?.at(-1)?.content;
  return typeof content === 'string' ? content : '';
}

/** Wraps `sim.engine.begin` to record every request by prompt; returns the records. */
function recordByPrompt(sim: SimServer): Map<string, PromptCalls> {
  const byPrompt = new Map<string, PromptCalls>();
  const engine = sim.engine;
  const begin = engine.begin.bind(engine);
  engine.begin = (body: unknown): SimRequestTracker => {
    const tracker = begin(body);
    const key = promptOf(body);
    const rec = byPrompt.get(key) ?? { calls: 0, inFlight: 0, maxInFlight: 0, aborted: 0, completed: 0 };
    byPrompt.set(key, rec);
    rec.calls++;
    rec.inFlight++;
    rec.maxInFlight = Math.max(rec.maxInFlight, rec.inFlight);
    let ended = false;
    const end = (how: 'aborted' | 'completed' | undefined) => {
      if (ended) return;
      ended = true;
      rec.inFlight--;
      if (how) rec[how]++;
    };
    return {
      get ended() {
        return tracker.ended;
      },
      complete(usage) {
        if (!tracker.ended) end('completed');
        tracker.complete(usage);
      },
      abort() {
        if (!tracker.ended) end('aborted');
        tracker.abort();
      },
      fail() {
        if (!tracker.ended) end(undefined);
        tracker.fail();
      },
    };
  };
  return byPrompt;
}

/** An HTTP proxy to the simulator: open, it forwards at once; closed, it holds requests until opened. */
interface Gate {
  url: string;
  /** Requests held now. */
  readonly held: number;
  close(): void;
  open(): void;
  stop(): Promise<void>;
}

async function startGate(target: string): Promise<Gate> {
  let closed = false;
  let held: Array<() => void> = [];
  const server: Server = createServer((req, res) => {
    const forward = () => {
      const up = httpRequest(new URL(req.url ?? '/', target), { method: req.method, headers: req.headers }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      });
      up.on('error', () => res.destroy());
      res.on('close', () => up.destroy()); // the gateway went away: so does the upstream call
      req.pipe(up);
    };
    if (closed) held.push(forward);
    else forward();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}/v1`, // like the simulator's
    get held() {
      return held.length;
    },
    close: () => void (closed = true),
    open() {
      closed = false;
      const release = held;
      held = [];
      for (const forward of release) forward();
    },
    stop: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** Sum of a counter's samples in /metrics whose labels contain every `match` (e.g. `status="succeeded"`). */
async function metric(gw: Gw, name: string, ...match: string[]): Promise<number> {
  const text = await fetch(`${gw.url}/metrics`).then((r) => r.text());
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (match.every((m) => line.includes(m))) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

async function getJob(gw: Gw, key: string, id: string): Promise<any> {
  return fetch(`${gw.url}/v1/jobs/${id}`, { headers: auth(key) }).then((r) => r.json());
}

/**
 * Resolves with `fn`'s first value that is neither undefined nor false, polling every `everyMs`;
 * the timeout only bounds a failure.
 */
async function until<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 20_000, everyMs = 5): Promise<T> {
  return vi.waitFor(
    async () => {
      const v = await fn();
      if (v === undefined || v === false) throw new Error(`still waiting for ${what}`);
      return v;
    },
    { timeout: timeoutMs, interval: everyMs },
  );
}

/** Reads a job's SSE events until the stream ends. */
async function readEvents(url: string, key: string): Promise<Array<{ event: string; data: any }>> {
  const res = await fetch(url, { headers: auth(key) });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
  const out: Array<{ event: string; data: any }> = [];
  for (const block of (await res.text()).split('\n\n')) {
    const event = block.match(/^event: (.*)$/m)?.[1];
    const data = block.match(/^data: (.*)$/m)?.[1];
    if (event && data) out.push({ event, data: JSON.parse(data) });
  }
  return out;
}

describe.skipIf(!redis || !pg)('async jobs across two gateway processes (PostgreSQL queue, Redis events)', () => {
  const schema = uniqueName('tg_jobs');
  let sim: SimServer;
  let gate: Gate;
  let byPrompt: Map<string, PromptCalls>;
  let a: TestGateway;
  let b: PeerGateway;
  let key: string;

  beforeAll(async () => {
    sim = await startSim({
      ...FAST_MODELS,
      // Streams 30 deltas, paced: a follower gets them one by one.
      'sim-slow': { type: 'chat', ttftMs: { median: 0, p95: 0 }, tokensPerSecond: 40, outputTokens: { min: 30, max: 30 }, dimensions: 8 },
      // 400 s of answer: only a cancel ends it within the test.
      'sim-crawl': { type: 'chat', ttftMs: { median: 0, p95: 0 }, tokensPerSecond: 1, outputTokens: { min: 400, max: 400 }, dimensions: 8 },
    });
    byPrompt = recordByPrompt(sim);
    gate = await startGate(sim.url);
    const raw: RawConfig = httpSimConfig(
      { up: { url: gate.url } as SimServer },
      {
        fast: { deployments: [{ provider: 'up', model: 'sim-small' }] },
        slow: { deployments: [{ provider: 'up', model: 'sim-slow' }] },
        crawl: { deployments: [{ provider: 'up', model: 'sim-crawl' }] },
      },
      {
        storage: distributedStorage(schema),
        cache: { enabled: false },
        resilience: { retry: { maxRetries: 0, baseDelayMs: 1, maxDelayMs: 2 }, breaker: { failureThreshold: 1000 } },
        jobs: {
          concurrency: 4,
          pollMs: 200,
          // An hour's lease: heartbeats every 20 minutes, so a cancel seen within the test came over the change bus.
          leaseMs: 3_600_000,
          webhooks: { signingSecret: 'distributed-test-master-key-0123456789', allowLoopback: true, baseDelayMs: 20, maxDelayMs: 50, timeoutMs: 60_000 },
        },
      },
    );
    a = await startGateway(raw);
    b = await startPeer(raw);
    key = a.apiKey;
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
    await gate?.stop();
    await sim?.close();
    await dropDistributed(schema);
  });

  /** The process running a job (its worker holds it), once it runs. */
  async function runnerOf(id: string): Promise<{ runner: Gw; other: Gw; name: 'A' | 'B' }> {
    await until(`job ${id} to run`, async () => (await getJob(a, key, id)).status === 'running');
    return until(`a worker holding ${id}`, () => {
      const onA = a.gateway.worker!.runningCount > 0;
      const onB = b.gateway.worker!.runningCount > 0;
      if (onA === onB) return undefined;
      return onA ? { runner: a, other: b, name: 'A' as const } : { runner: b, other: a, name: 'B' as const };
    });
  }

  it('drains 200 jobs submitted through both processes with both processes\' workers, each job run once, all succeeded', async () => {
    const tag = `drain-${Date.now()}`;
    const prompt = (i: number) => `${tag}: job ${i}, say something short.`;
    const ids: string[] = new Array(200);
    // Upstream held: each process fills its 4 slots with jobs that cannot end yet, so both run some.
    gate.close();
    // Submitted by 10 concurrent clients; every 4th through B.
    let next = 0;
    await Promise.all(
      Array.from({ length: 10 }, async () => {
        for (let i = next++; i < 200; i = next++) {
          const via = i % 4 === 3 ? b : a;
          const res = await postJson(`${via.url}/v1/jobs`, { body: { model: 'fast', messages: [{ role: 'user', content: prompt(i) }] }, metadata: { tag } }, auth(key));
          expect(res.status).toBe(202);
          ids[i] = res.body.id;
        }
      }),
    );
    await until('both processes running 4 jobs', () => a.gateway.worker!.runningCount === 4 && b.gateway.worker!.runningCount === 4 && gate.held === 8);
    gate.open();
    const finished = (gw: Gw) => metric(gw, 'tollgate_jobs_finished_total');
    await until('200 jobs finished', async () => (await finished(a)) + (await finished(b)) >= 200, 60_000, 50); // (a scrape is not free)

    const [finA, finB] = [await finished(a), await finished(b)];
    expect(finA + finB).toBe(200);
    // Both processes ran some of them (each at least the 4 it held).
    expect(finA).toBeGreaterThanOrEqual(4);
    expect(finB).toBeGreaterThanOrEqual(4);
    expect((await metric(a, 'tollgate_jobs_started_total')) + (await metric(b, 'tollgate_jobs_started_total'))).toBe(200);
    expect((await metric(a, 'tollgate_jobs_finished_total', 'status="succeeded"')) + (await metric(b, 'tollgate_jobs_finished_total', 'status="succeeded"'))).toBe(200);

    // Upstream: one call per job, never two at once for one job.
    const calls = [...Array(200).keys()].map((i) => byPrompt.get(prompt(i)));
    expect(calls.filter((c) => c === undefined)).toHaveLength(0);
    expect(calls.reduce((n, c) => n + c!.calls, 0)).toBe(200);
    expect(calls.filter((c) => c!.calls !== 1 || c!.maxInFlight !== 1)).toEqual([]);

    // Each job as a client sees it (through either process): succeeded at the first attempt.
    const jobs = await Promise.all(ids.map((id, i) => getJob(i % 2 ? b : a, key, id)));
    expect(jobs.filter((j) => j.status !== 'succeeded' || j.attempts !== 1).map((j) => `${j.id} ${j.status} ${j.attempts}`)).toEqual([]);
    expect(jobs.every((j) => j.result?.object === 'chat.completion')).toBe(true);
    process.stdout.write(`[jobs distributed] 200 jobs: ${finA} finished by A, ${finB} by B\n`);
  });

  it('relays a job\'s deltas and its completion to a follower on the other process (Redis), the text equal to the result', async () => {
    gate.close(); // the job runs, but its upstream call waits: it is still running when we look
    const res = await postJson(`${a.url}/v1/jobs`, { body: { model: 'slow', messages: [{ role: 'user', content: `follow me ${Date.now()}` }] } }, auth(key));
    expect(res.status).toBe(202);
    // Either process may claim it (A's worker is woken in process, B's over the change bus at once):
    // follow it through the one that does not run it.
    const { other, name } = await runnerOf(res.body.id);
    expect(other.gateway.worker!.runningCount).toBe(0);
    const following = readEvents(`${other.url}/v1/jobs/${res.body.id}/events`, key);
    await until('the upstream call', () => gate.held === 1);
    gate.open();
    const events = await following;
    const names = events.map((e) => e.event);
    expect(names[0]).toBe('started');
    expect(names.filter((n) => n === 'delta').length).toBeGreaterThan(1);
    expect(names.at(-1)).toBe('completed');
    const completed = events.at(-1)!.data;
    expect(completed.status).toBe('succeeded');
    const deltas = events.filter((e) => e.event === 'delta').map((e) => e.data);
    // Each delta once, in order.
    expect(deltas.map((d) => d.seq)).toEqual(deltas.map((_, i) => i + 1));
    expect(deltas.map((d) => d.content).join('')).toBe(completed.result.choices[0].message.content);
    process.stdout.write(`[jobs distributed] submitted through A, run by ${name}, followed through ${name === 'A' ? 'B' : 'A'}: ${deltas.length} deltas relayed\n`);
  });

  it('a cancel through one process stops the job running in the other, upstream call included', async () => {
    const prompt = `cancel me ${Date.now()}`;
    const res = await postJson(`${a.url}/v1/jobs`, { body: { model: 'crawl', messages: [{ role: 'user', content: prompt }] } }, auth(key));
    // Either process may claim it: cancel it through the one that does not run it.
    const { runner, other, name } = await runnerOf(res.body.id);
    await until('the upstream call', () => (byPrompt.get(prompt)?.inFlight ?? 0) === 1);
    const del = await fetch(`${other.url}/v1/jobs/${res.body.id}`, { method: 'DELETE', headers: auth(key) });
    expect(del.status).toBe(200);
    expect((await del.json()).status).toBe('cancelled');
    // No lease heartbeat comes within the test (every 20 minutes), nor the answer's end (400 s):
    // the change bus carried the cancel.
    await until('the upstream call to be aborted', () => byPrompt.get(prompt)!.aborted === 1);
    await until('the runner to free its slot', () => runner.gateway.worker!.runningCount === 0);
    const job = await getJob(a, key, res.body.id);
    expect(job.status).toBe('cancelled');
    expect(job.result).toBeNull();
    expect(byPrompt.get(prompt)).toMatchObject({ calls: 1, completed: 0, aborted: 1 });
    process.stdout.write(`[jobs distributed] run by ${name}, cancelled through ${name === 'A' ? 'B' : 'A'}: upstream call aborted\n`);
  });

  it('both processes sign webhooks with the same per-tenant secret', async () => {
    const secretA = await fetch(`${a.url}/admin/v1/tenants/${a.tenantId}/webhook-secret`, { headers: auth(a.adminKey) }).then((r) => r.json());
    const secretB = await fetch(`${b.url}/admin/v1/tenants/${a.tenantId}/webhook-secret`, { headers: auth(a.adminKey) }).then((r) => r.json());
    expect(secretA.secret).toMatch(/^whsec_[0-9a-f]{64}$/);
    expect(secretB.secret).toBe(secretA.secret);

    const receiver: WebhookReceiver = await startWebhookReceiver({ secret: secretA.secret });
    try {
      const delivered = (gw: Gw) => metric(gw, 'tollgate_job_webhook_deliveries_total', 'outcome="delivered"');
      const before = { a: await delivered(a), b: await delivered(b) };
      // The receiver answers nothing until 9 deliveries wait on it at once: more than one process's
      // 8 delivery slots, so both processes are delivering. Then it answers them all.
      let waiting = 0;
      let answer!: () => void;
      const answered = new Promise<void>((resolve) => (answer = resolve));
      receiver.handle(async () => {
        if (++waiting === 9) answer();
        await answered;
        return { status: 200 };
      });
      const ids = await Promise.all(
        Array.from({ length: 24 }, async (_, i) => {
          const res = await postJson(
            `${(i % 2 ? b : a).url}/v1/jobs`,
            { body: { model: 'fast', messages: [{ role: 'user', content: `hook ${i} ${Date.now()}` }] }, webhook_url: receiver.url },
            auth(key),
          );
          expect(res.status).toBe(202);
          return res.body.id as string;
        }),
      );
      await until('24 webhooks', () => receiver.unique.size >= 24, 20_000, 25);
      expect(receiver.deliveries.every((d) => d.signatureValid && d.status === 200)).toBe(true);
      expect(new Set([...receiver.unique.values()].map((d) => d.body.data.id))).toEqual(new Set(ids));
      // Each process counts a delivery once the receiver's answer is recorded (just after the receiver saw it).
      let byA = 0;
      let byB = 0;
      await until('24 deliveries counted', async () => {
        byA = (await delivered(a)) - before.a;
        byB = (await delivered(b)) - before.b;
        return byA + byB >= 24;
      }, 20_000, 25);
      expect(byA + byB).toBe(24);
      expect(byA).toBeGreaterThan(0);
      expect(byB).toBeGreaterThan(0);
      process.stdout.write(`[jobs distributed] webhooks: ${byA} signed by A, ${byB} by B, all verified with one secret\n`);
    } finally {
      await receiver.close();
    }
  });
});
