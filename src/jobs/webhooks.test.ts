import { createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { webhookPolicySchema, type WebhookPolicy } from '../config/jobs-schema.js';
import { createLogger } from '../observability/logger.js';
import { verifyWebhook } from '../observability/webhook.js';
// @ts-ignore TS6059: test helpers live outside tsconfig's rootDir (src); the import is type-checked all the same.
import { startWebhookReceiver, type WebhookReceiver } from '../../test/helpers/webhook-receiver.js';
import type { JobRecord, JobStore, WebhookDelivery, WebhookState } from './types.js';
import {
  MASTER_SECRET_FILE,
  WebhookDispatcher,
  type WebhookDispatcherOptions,
  nextWebhookState,
  parseRetryAfter,
  resolveMasterSecret,
  tenantWebhookSecret,
} from './webhooks.js';
import { jobObject } from './wire.js';

const MASTER = 'test-master-secret-0123456789';
const ACME_SECRET = tenantWebhookSecret(MASTER, 'acme');

const policy = (over: Partial<WebhookPolicy> = {}): WebhookPolicy => ({
  ...webhookPolicySchema.parse({}),
  allowLoopback: true,
  timeoutMs: 2_000,
  baseDelayMs: 20,
  maxDelayMs: 1_000,
  ...over,
});

let seq = 0;
function makeJob(over: Partial<JobRecord> = {}): JobRecord {
  seq++;
  const now = Date.now();
  return {
    id: `job_${seq.toString(16).padStart(24, '0')}`,
    seq,
    tenantId: 'acme',
    keyId: 'key_1',
    userId: '',
    kind: 'chat',
    model: 'sim-fast',
    body: { model: 'sim-fast', messages: [{ role: 'user', content: 'hi' }] },
    priority: 4,
    status: 'succeeded',
    webhookUrl: null,
    deadlineAt: now + 3_600_000,
    metadata: { order: '42' },
    idempotencyKey: null,
    batchId: null,
    customId: null,
    attempts: 1,
    maxAttempts: 3,
    result: { id: 'chatcmpl-1', object: 'chat.completion', choices: [] },
    error: null,
    deadLettered: false,
    costPico: 1_234_000,
    promptTokens: 3,
    completionTokens: 5,
    createdAt: now - 2_000,
    startedAt: now - 1_500,
    finishedAt: now - 1_000,
    runAfter: now - 2_000,
    leaseOwner: null,
    leaseUntil: null,
    webhook: { state: 'pending', attempts: 0, nextAt: now - 1_000 },
    ...over,
  };
}

/** The webhook outbox of a JobStore, in memory: due pending entries are leased by pushing nextAt. */
class FakeOutbox implements Pick<JobStore, 'claimWebhooks' | 'recordDelivery'> {
  readonly jobs = new Map<string, JobRecord>();
  readonly records: Array<{ delivery: WebhookDelivery; next: { state: WebhookState; nextAt: number } }> = [];
  readonly claims: Array<{ owner: string; limit: number; leaseMs: number }> = [];
  failClaims = 0;
  failRecords = 0;

  add(...jobs: JobRecord[]): this {
    for (const j of jobs) this.jobs.set(j.id, j);
    return this;
  }

  async claimWebhooks(opts: { owner: string; limit: number; leaseMs: number; now: number }): Promise<JobRecord[]> {
    this.claims.push({ owner: opts.owner, limit: opts.limit, leaseMs: opts.leaseMs });
    if (this.failClaims > 0) {
      this.failClaims--;
      throw new Error('database is locked');
    }
    const due = [...this.jobs.values()]
      .filter((j) => j.webhook?.state === 'pending' && j.webhook.nextAt <= opts.now)
      .sort((a, b) => a.webhook!.nextAt - b.webhook!.nextAt)
      .slice(0, opts.limit);
    for (const j of due) j.webhook = { ...j.webhook!, nextAt: opts.now + opts.leaseMs };
    return due.map((j) => structuredClone(j));
  }

  async recordDelivery(delivery: WebhookDelivery, next: { state: WebhookState; nextAt: number }): Promise<void> {
    if (this.failRecords > 0) {
      this.failRecords--;
      throw new Error('disk I/O error');
    }
    this.records.push({ delivery, next });
    const j = this.jobs.get(delivery.jobId)!;
    j.webhook = { state: next.state, attempts: j.webhook!.attempts + 1, nextAt: next.nextAt };
  }

  of(jobId: string) {
    return this.records.filter((r) => r.delivery.jobId === jobId);
  }
}

async function until(cond: () => boolean, timeoutMs = 5_000, what = 'condition'): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const silent = createLogger('silent');
const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function receiver(secret = ACME_SECRET): Promise<WebhookReceiver> {
  const rx = await startWebhookReceiver({ secret });
  cleanups.push(() => rx.close());
  return rx;
}

function dispatcher(store: FakeOutbox, opts: Partial<WebhookDispatcherOptions> = {}): WebhookDispatcher {
  const d = new WebhookDispatcher({
    store,
    policy: policy(),
    masterSecret: MASTER,
    owner: 'proc-1',
    log: silent,
    pollMs: 5,
    random: () => 1,
    ...opts,
  });
  d.start();
  cleanups.push(() => d.stop(100));
  return d;
}

describe('tenantWebhookSecret', () => {
  it('is whsec_ + hex HMAC-SHA256(master, tollgate-webhook:<tenant>), different per tenant', () => {
    const expected = createHmac('sha256', MASTER).update('tollgate-webhook:acme').digest('hex');
    expect(ACME_SECRET).toBe(`whsec_${expected}`);
    expect(ACME_SECRET).toMatch(/^whsec_[0-9a-f]{64}$/);
    expect(tenantWebhookSecret(MASTER, 'globex')).not.toBe(ACME_SECRET);
    expect(tenantWebhookSecret('another-master-key-123', 'acme')).not.toBe(ACME_SECRET);
  });
});

describe('resolveMasterSecret', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  const tmp = () => {
    const d = mkdtempSync(join(tmpdir(), 'tg-whsec-'));
    dirs.push(d);
    return d;
  };

  it('uses the configured signingSecret, in either mode', () => {
    expect(resolveMasterSecret({ signingSecret: 'configured-secret-1234' }, tmp(), false)).toBe('configured-secret-1234');
    expect(resolveMasterSecret({ signingSecret: 'configured-secret-1234' }, tmp(), true)).toBe('configured-secret-1234');
  });

  it('embedded, unset: creates a random key file (mode 0600) once and reads it afterwards', () => {
    const dir = tmp();
    const first = resolveMasterSecret({}, dir, false);
    expect(first).toMatch(/^[0-9a-f]{64}$/);
    const file = join(dir, MASTER_SECRET_FILE);
    expect(readFileSync(file, 'utf8').trim()).toBe(first);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(resolveMasterSecret({}, dir, false)).toBe(first);
    expect(resolveMasterSecret({}, tmp(), false)).not.toBe(first);
  });

  it('embedded: refuses a truncated key file rather than signing with it', () => {
    const dir = tmp();
    writeFileSync(join(dir, MASTER_SECRET_FILE), 'abc\n');
    expect(() => resolveMasterSecret({}, dir, false)).toThrow(/shorter than 16/);
  });

  it('distributed, unset: throws naming jobs.webhooks.signingSecret', () => {
    expect(() => resolveMasterSecret({}, tmp(), true)).toThrow(/jobs\.webhooks\.signingSecret/);
  });
});

describe('nextWebhookState', () => {
  const p = { maxAttempts: 5, baseDelayMs: 1_000, maxDelayMs: 10_000 };
  const now = 1_000_000;

  it('2xx: delivered; 410: failed at once; maxAttempts reached: failed', () => {
    expect(nextWebhookState({ attempt: 1, statusCode: 204, policy: p, now, random: () => 0.5 })).toEqual({ state: 'delivered', nextAt: now });
    expect(nextWebhookState({ attempt: 1, statusCode: 410, policy: p, now, random: () => 0.5 })).toEqual({ state: 'failed', nextAt: now });
    expect(nextWebhookState({ attempt: 5, statusCode: 500, policy: p, now, random: () => 0.5 })).toEqual({ state: 'failed', nextAt: now });
    expect(nextWebhookState({ attempt: 5, statusCode: null, policy: p, now, random: () => 0.5 })).toEqual({ state: 'failed', nextAt: now });
  });

  it('otherwise pending after a full-jitter exponential backoff capped at maxDelayMs', () => {
    const at = (attempt: number, r: number) => nextWebhookState({ attempt, statusCode: 503, policy: p, now, random: () => r }).nextAt - now;
    expect([1, 2, 3, 4].map((a) => at(a, 1))).toEqual([1_000, 2_000, 4_000, 8_000]);
    expect(nextWebhookState({ attempt: 4, statusCode: 503, policy: { ...p, maxAttempts: 20 }, now, random: () => 1 }).nextAt - now).toBe(8_000);
    expect(nextWebhookState({ attempt: 9, statusCode: 503, policy: { ...p, maxAttempts: 20 }, now, random: () => 1 }).nextAt - now).toBe(10_000);
    expect(at(3, 0.5)).toBe(2_000);
    expect(at(3, 0)).toBe(0);
  });

  it("honours a longer Retry-After, capped at maxDelayMs; ignores a shorter one", () => {
    const next = (retryAfterMs: number) =>
      nextWebhookState({ attempt: 1, statusCode: 429, retryAfterMs, policy: p, now, random: () => 1 }).nextAt - now;
    expect(next(5_000)).toBe(5_000);
    expect(next(500)).toBe(1_000);
    expect(next(3_600_000)).toBe(10_000);
  });

  it('parseRetryAfter reads seconds and HTTP dates', () => {
    expect(parseRetryAfter('30', now)).toBe(30_000);
    expect(parseRetryAfter(new Date(now + 60_000).toUTCString(), now)).toBe(60_000);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
  });
});

describe('WebhookDispatcher', () => {
  it('delivers a signed event with a stable webhook-id, once, and records it', async () => {
    const rx = await receiver();
    const job = makeJob({ webhookUrl: rx.url });
    const asClaimed = structuredClone(job); // the fake store updates `job` in place after the delivery
    const store = new FakeOutbox().add(job);
    const seen: Array<[string, boolean]> = [];
    dispatcher(store, { onDelivered: (id, ok) => seen.push([id, ok]) });

    await until(() => store.records.length === 1, 5_000, 'the delivery record');
    expect(rx.deliveries).toHaveLength(1);
    const d = rx.deliveries[0]!;
    expect(d.signatureValid).toBe(true);
    expect(verifyWebhook(ACME_SECRET, { timestamp: d.headers['x-tollgate-timestamp'] as string, signature: d.headers['x-tollgate-signature'] as string }, d.rawBody)).toBe(true);
    // another tenant's secret does not verify it
    expect(verifyWebhook(tenantWebhookSecret(MASTER, 'globex'), { timestamp: d.headers['x-tollgate-timestamp'] as string, signature: d.headers['x-tollgate-signature'] as string }, d.rawBody)).toBe(false);
    expect(d.headers['x-tollgate-signature']).toMatch(/^v1=[0-9a-f]{64}$/);
    expect(d.webhookId).toBe(`${job.id}:job.succeeded`);
    expect(d.event).toBe('job.succeeded');
    expect(d.headers['content-type']).toBe('application/json');
    expect(d.headers['user-agent']).toBe('tollgate-webhook/1');
    expect(d.body).toEqual({
      id: `${job.id}:job.succeeded`,
      type: 'job.succeeded',
      created: Math.floor(job.finishedAt! / 1000),
      data: JSON.parse(JSON.stringify(jobObject(asClaimed))),
    });
    expect(rx.unique.size).toBe(1);

    const rec = store.records[0]!;
    expect(rec.delivery).toMatchObject({ jobId: job.id, attempt: 1, statusCode: 200, error: '' });
    expect(rec.delivery.durationMs).toBeGreaterThanOrEqual(0);
    expect(rec.next.state).toBe('delivered');
    expect(seen).toEqual([[job.id, true]]);
    await new Promise((r) => setTimeout(r, 50));
    expect(rx.deliveries).toHaveLength(1); // not delivered again
  });

  it.each([
    ['failed', 'job.failed'],
    ['cancelled', 'job.cancelled'],
    ['expired', 'job.expired'],
  ] as const)('a %s job sends %s', async (status, type) => {
    const rx = await receiver();
    const job = makeJob({ webhookUrl: rx.url, status, result: null, error: { code: 'upstream_error', message: 'boom', status: 502 } });
    const store = new FakeOutbox().add(job);
    dispatcher(store);
    await rx.waitFor(1);
    expect(rx.deliveries[0]!.body.type).toBe(type);
    expect(rx.deliveries[0]!.webhookId).toBe(`${job.id}:${type}`);
    expect(rx.deliveries[0]!.body.data.status).toBe(status);
  });

  it('retries a failing receiver with backoff: 2 failures then 200 = 3 attempts, same webhook-id, delivered', async () => {
    const rx = await receiver();
    rx.failNext(2, 503);
    const job = makeJob({ webhookUrl: rx.url });
    const store = new FakeOutbox().add(job);
    dispatcher(store, { policy: policy({ baseDelayMs: 60 }) });

    await until(() => store.records.length === 3, 5_000, '3 attempts');
    const recs = store.records;
    expect(recs.map((r) => r.delivery.attempt)).toEqual([1, 2, 3]);
    expect(recs.map((r) => r.delivery.statusCode)).toEqual([503, 503, 200]);
    expect(recs.map((r) => r.delivery.error)).toEqual(['HTTP 503', 'HTTP 503', '']);
    expect(recs.map((r) => r.next.state)).toEqual(['pending', 'pending', 'delivered']);
    // full jitter with random() = 1: 60 ms, then 120 ms
    expect(recs[0]!.next.nextAt - recs[0]!.delivery.at).toBe(60);
    expect(recs[1]!.next.nextAt - recs[1]!.delivery.at).toBe(120);
    // the receiver saw each retry no earlier than its backoff allowed
    expect(rx.deliveries[1]!.at).toBeGreaterThanOrEqual(recs[0]!.next.nextAt - 1);
    expect(rx.deliveries[2]!.at).toBeGreaterThanOrEqual(recs[1]!.next.nextAt - 1);
    expect(new Set(rx.deliveries.map((d) => d.webhookId))).toEqual(new Set([`${job.id}:job.succeeded`]));
    expect(new Set(rx.deliveries.map((d) => d.body.id))).toEqual(new Set([`${job.id}:job.succeeded`]));
    expect(rx.deliveries.every((d) => d.signatureValid)).toBe(true);
    expect(rx.unique.size).toBe(1);
    expect(store.jobs.get(job.id)!.webhook).toMatchObject({ state: 'delivered', attempts: 3 });
  });

  it("waits for a receiver's Retry-After when it is longer than the backoff", async () => {
    const rx = await receiver();
    rx.failNext(1, 429, { 'retry-after': '1' });
    const job = makeJob({ webhookUrl: rx.url });
    const store = new FakeOutbox().add(job);
    dispatcher(store, { policy: policy({ baseDelayMs: 10, maxDelayMs: 5_000 }) });
    await until(() => store.records.length === 2, 5_000, 'the retry');
    const [first, second] = store.records;
    expect(first!.next.nextAt - first!.delivery.at).toBe(1_000);
    expect(second!.delivery.at - first!.delivery.at).toBeGreaterThanOrEqual(990);
    expect(second!.next.state).toBe('delivered');
  });

  it('gives up after maxAttempts: failed, no more attempts', async () => {
    const rx = await receiver();
    rx.handle(() => ({ status: 500 }));
    const job = makeJob({ webhookUrl: rx.url });
    const store = new FakeOutbox().add(job);
    const seen: boolean[] = [];
    dispatcher(store, { policy: policy({ maxAttempts: 3, baseDelayMs: 5 }), onDelivered: (_id, ok) => seen.push(ok) });
    await until(() => store.records.length === 3, 5_000, '3 attempts');
    expect(store.records.map((r) => r.next.state)).toEqual(['pending', 'pending', 'failed']);
    expect(store.records.map((r) => r.delivery.statusCode)).toEqual([500, 500, 500]);
    expect(seen).toEqual([false, false, false]);
    await new Promise((r) => setTimeout(r, 80));
    expect(rx.deliveries).toHaveLength(3);
    expect(rx.unique.size).toBe(0);
  });

  it('stops at once on 410 Gone', async () => {
    const rx = await receiver();
    rx.failNext(1, 410);
    const job = makeJob({ webhookUrl: rx.url });
    const store = new FakeOutbox().add(job);
    dispatcher(store);
    await until(() => store.records.length === 1);
    expect(store.records[0]!.next.state).toBe('failed');
    expect(store.records[0]!.delivery.statusCode).toBe(410);
  });

  it('does not follow redirects', async () => {
    const rx = await receiver();
    const other = await receiver();
    rx.failNext(1, 307, { location: other.url });
    const job = makeJob({ webhookUrl: rx.url });
    const store = new FakeOutbox().add(job);
    dispatcher(store);
    await until(() => store.records.length === 1);
    expect(store.records[0]!.delivery).toMatchObject({ statusCode: 307, error: 'HTTP 307' });
    expect(store.records[0]!.next.state).toBe('pending');
    expect(other.deliveries).toHaveLength(0);
  });

  it('times out a slow receiver (jobs.webhooks.timeoutMs)', async () => {
    const rx = await receiver();
    rx.handle(() => ({ status: 200, delayMs: 1_000 }));
    const job = makeJob({ webhookUrl: rx.url });
    const store = new FakeOutbox().add(job);
    dispatcher(store, { policy: policy({ timeoutMs: 100 }) });
    await until(() => store.records.length === 1);
    expect(store.records[0]!.delivery.statusCode).toBeNull();
    expect(store.records[0]!.delivery.error).toMatch(/timed out after 100 ms/);
    expect(store.records[0]!.next.state).toBe('pending');
  });

  it('refuses loopback when allowLoopback is false: a failed attempt with the policy reason, no request sent', async () => {
    const rx = await receiver();
    const job = makeJob({ webhookUrl: rx.url });
    const store = new FakeOutbox().add(job);
    dispatcher(store, { policy: policy({ allowLoopback: false }) });
    await until(() => store.records.length === 1);
    const rec = store.records[0]!;
    expect(rec.delivery.statusCode).toBeNull();
    expect(rec.delivery.error).toMatch(/loopback addresses are not allowed \(jobs\.webhooks\.allowLoopback\)/);
    expect(rec.next.state).toBe('pending');
    expect(rx.deliveries).toHaveLength(0);
  });

  it('refuses at connect a name that resolves to loopback (DNS rebinding)', async () => {
    const rx = await receiver();
    const job = makeJob({ webhookUrl: `http://hooks.example.test:${rx.port}/hook` });
    const store = new FakeOutbox().add(job);
    const resolved: string[] = [];
    dispatcher(store, {
      // the URL passes (a public-looking name on the allow-list); the name resolves to 127.0.0.1
      policy: policy({ allowLoopback: false, hosts: ['hooks.example.test'] }),
      resolve: async (host) => {
        resolved.push(host);
        return [{ address: '127.0.0.1', family: 4 }];
      },
    });
    await until(() => store.records.length === 1);
    expect(resolved).toContain('hooks.example.test');
    expect(store.records[0]!.delivery.statusCode).toBeNull();
    expect(store.records[0]!.delivery.error).toBe(
      'webhook_url: hooks.example.test resolves to 127.0.0.1, a loopback address; loopback addresses are not allowed (jobs.webhooks.allowLoopback)',
    );
    expect(rx.deliveries).toHaveLength(0);
  });

  it('refuses when any resolved address is not allowed, even if another is public', async () => {
    const rx = await receiver();
    const job = makeJob({ webhookUrl: `http://hooks.example.test:${rx.port}/hook` });
    const store = new FakeOutbox().add(job);
    dispatcher(store, {
      policy: policy({ allowLoopback: false }),
      resolve: async () => [
        { address: '93.184.216.34', family: 4 },
        { address: '169.254.169.254', family: 4 },
      ],
    });
    await until(() => store.records.length === 1);
    expect(store.records[0]!.delivery.error).toMatch(/resolves to 169\.254\.169\.254.*allowPrivate/);
    expect(rx.deliveries).toHaveLength(0);
  });

  it('connects to the address it checked (a resolved name, allowed)', async () => {
    const rx = await receiver();
    const job = makeJob({ webhookUrl: `http://hooks.example.test:${rx.port}/hook` });
    const store = new FakeOutbox().add(job);
    dispatcher(store, { resolve: async () => [{ address: '127.0.0.1', family: 4 }] });
    await until(() => store.records.length === 1);
    expect(store.records[0]!.next.state).toBe('delivered');
    expect(rx.deliveries[0]!.headers.host).toBe(`hooks.example.test:${rx.port}`);
  });

  it('resolves `localhost` through the system resolver when loopback is allowed, and refuses it otherwise', async () => {
    const rx = await receiver();
    const ok = makeJob({ webhookUrl: `http://localhost:${rx.port}/hook` });
    const store = new FakeOutbox().add(ok);
    dispatcher(store);
    await until(() => store.records.length === 1);
    expect(store.records[0]!.next.state).toBe('delivered');

    // listed on the allow-list but loopback not allowed: refused, nothing sent
    const refused = makeJob({ webhookUrl: `http://localhost:${rx.port}/hook` });
    const store2 = new FakeOutbox().add(refused);
    dispatcher(store2, { policy: policy({ allowLoopback: false, hosts: ['localhost'] }) });
    await until(() => store2.records.length === 1);
    expect(store2.records[0]!.delivery.error).toMatch(/allowLoopback/);
    expect(rx.deliveries).toHaveLength(1);
  });

  it('claims no more than its free slots, and delivers every job', async () => {
    const rx = await receiver();
    let inFlight = 0;
    let most = 0;
    rx.handle(async () => {
      inFlight++;
      most = Math.max(most, inFlight);
      await new Promise((r) => setTimeout(r, 30));
      inFlight--;
      return { status: 200 };
    });
    const jobs = Array.from({ length: 7 }, () => makeJob({ webhookUrl: rx.url }));
    const store = new FakeOutbox().add(...jobs);
    dispatcher(store, { concurrency: 2 });
    await until(() => store.records.length === 7, 5_000, '7 deliveries');
    expect(most).toBeLessThanOrEqual(2);
    expect(store.claims.every((c) => c.limit >= 1 && c.limit <= 2)).toBe(true);
    expect(store.claims[0]).toEqual({ owner: 'proc-1', limit: 2, leaseMs: 2_000 + 5_000 });
    expect(rx.unique.size).toBe(7);
  });

  it('survives store failures: a failed claim is retried on the next poll, a failed record after the lease', async () => {
    const rx = await receiver();
    const job = makeJob({ webhookUrl: rx.url });
    const store = new FakeOutbox().add(job);
    store.failClaims = 2;
    store.failRecords = 1;
    // a short timeout makes the lease (timeoutMs + 5 s) the thing to wait for: fake the clock instead
    let skew = 0;
    dispatcher(store, { now: () => Date.now() + skew });
    await rx.waitFor(1);
    await new Promise((r) => setTimeout(r, 30));
    expect(store.records).toHaveLength(0); // the record failed; the job stays leased
    skew = 10_000; // the lease passes
    await until(() => store.records.length === 1, 5_000, 'the redelivery record');
    expect(store.records[0]!.next.state).toBe('delivered');
    expect(rx.deliveries).toHaveLength(2);
    expect(rx.unique.size).toBe(1); // the receiver deduped the redelivery by webhook-id
  });

  it('wake() looks at once instead of waiting for the next poll', async () => {
    const rx = await receiver();
    const store = new FakeOutbox();
    const d = dispatcher(store, { pollMs: 60_000 });
    await until(() => store.claims.length === 1);
    const job = makeJob({ webhookUrl: rx.url });
    store.add(job);
    d.wake();
    await until(() => store.records.length === 1, 2_000, 'the woken delivery');
  });

  it('stop() waits for deliveries in flight, then claims nothing more', async () => {
    const rx = await receiver();
    let entered = false;
    rx.handle(async () => {
      entered = true;
      await new Promise((r) => setTimeout(r, 200));
      return { status: 200 };
    });
    const job = makeJob({ webhookUrl: rx.url });
    const store = new FakeOutbox().add(job);
    const d = dispatcher(store);
    await until(() => entered);
    expect(d.active).toBe(1);
    await d.stop(5_000);
    expect(store.records).toHaveLength(1);
    expect(store.records[0]!.next.state).toBe('delivered');
    const claims = store.claims.length;
    store.add(makeJob({ webhookUrl: rx.url }));
    d.wake();
    await new Promise((r) => setTimeout(r, 50));
    expect(store.claims.length).toBe(claims);
  });

  it('stop() gives up on a delivery still in flight after the grace period, without recording it', async () => {
    const rx = await receiver();
    let entered = false;
    rx.handle(async () => {
      entered = true;
      await new Promise((r) => setTimeout(r, 3_000));
      return { status: 200 };
    });
    const job = makeJob({ webhookUrl: rx.url });
    const store = new FakeOutbox().add(job);
    const lines: string[] = [];
    const log = createLogger('warn', { write: (s: string) => void lines.push(s) });
    const d = dispatcher(store, { log, policy: policy({ timeoutMs: 10_000 }) });
    await until(() => entered);
    const t0 = Date.now();
    await d.stop(100);
    expect(Date.now() - t0).toBeLessThan(1_500);
    expect(store.records).toHaveLength(0);
    expect(lines.join('\n')).toMatch(/redelivered/);
    expect(lines.join('\n')).not.toContain(MASTER);
  });
});
