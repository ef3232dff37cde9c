import { createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AddressInfo, createServer } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
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
  timeoutMs: 10_000, // only bounds a failure: a loopback delivery never comes near it
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

/** Waits for `cond` (polling; the timeout only bounds a failure). */
async function until(cond: () => boolean, what = 'condition'): Promise<void> {
  await vi.waitFor(() => expect(cond(), `waiting for ${what}`).toBe(true), { timeout: 10_000, interval: 5 });
}

/**
 * Waits until the dispatcher has polled the outbox `n` more times (each poll is one claim): what
 * was not delivered by then was not due. The proof that something does NOT happen.
 */
async function polls(store: FakeOutbox, n = 3): Promise<void> {
  const from = store.claims.length;
  await until(() => store.claims.length >= from + n, `${n} more polls`);
}

/** The dispatcher's clock, moved by the test (backoffs and leases pass without waiting). */
function testClock() {
  let t = Date.now();
  return {
    now: () => t,
    advance(ms: number) {
      t += ms;
    },
  };
}

/** A receiver reply held until the test releases it (a slow receiver, with no timer to race). */
function gate() {
  let release!: () => void;
  const opened = new Promise<void>((r) => (release = r));
  cleanups.push(() => release()); // never leave a request hanging at the end of a test
  return { opened, release };
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

    await until(() => store.records.length === 1, 'the delivery record');
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
    await polls(store);
    expect(rx.deliveries).toHaveLength(1); // not delivered again
    expect(store.records).toHaveLength(1);
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
    const clock = testClock();
    dispatcher(store, { policy: policy({ baseDelayMs: 60 }), now: clock.now });

    // Each retry waits for its backoff on the dispatcher's clock: not one poll earlier.
    await until(() => store.records.length === 1, 'the first attempt');
    for (const [attempt, backoff] of [
      [2, 60],
      [3, 120],
    ] as const) {
      clock.advance(backoff - 1);
      await polls(store);
      expect(rx.deliveries).toHaveLength(attempt - 1); // 1 ms before its backoff: not yet
      clock.advance(1);
      await until(() => store.records.length === attempt, `attempt ${attempt}`);
    }
    const recs = store.records;
    expect(recs.map((r) => r.delivery.attempt)).toEqual([1, 2, 3]);
    expect(recs.map((r) => r.delivery.statusCode)).toEqual([503, 503, 200]);
    expect(recs.map((r) => r.delivery.error)).toEqual(['HTTP 503', 'HTTP 503', '']);
    expect(recs.map((r) => r.next.state)).toEqual(['pending', 'pending', 'delivered']);
    // full jitter with random() = 1: 60 ms, then 120 ms
    expect(recs[0]!.next.nextAt - recs[0]!.delivery.at).toBe(60);
    expect(recs[1]!.next.nextAt - recs[1]!.delivery.at).toBe(120);
    // each retry was made when its backoff was over
    expect(recs[1]!.delivery.at).toBe(recs[0]!.next.nextAt);
    expect(recs[2]!.delivery.at).toBe(recs[1]!.next.nextAt);
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
    const clock = testClock();
    dispatcher(store, { policy: policy({ baseDelayMs: 10, maxDelayMs: 5_000 }), now: clock.now });
    await until(() => store.records.length === 1, 'the first attempt');
    expect(store.records[0]!.next.nextAt - store.records[0]!.delivery.at).toBe(1_000);
    clock.advance(999); // past the 10 ms backoff, not yet the 1 s Retry-After
    await polls(store);
    expect(rx.deliveries).toHaveLength(1);
    clock.advance(1);
    await until(() => store.records.length === 2, 'the retry');
    const [first, second] = store.records;
    expect(second!.delivery.at - first!.delivery.at).toBe(1_000);
    expect(second!.next.state).toBe('delivered');
  });

  it('gives up after maxAttempts: failed, no more attempts', async () => {
    const rx = await receiver();
    rx.handle(() => ({ status: 500 }));
    const job = makeJob({ webhookUrl: rx.url });
    const store = new FakeOutbox().add(job);
    const seen: boolean[] = [];
    dispatcher(store, { policy: policy({ maxAttempts: 3, baseDelayMs: 5 }), onDelivered: (_id, ok) => seen.push(ok) });
    await until(() => store.records.length === 3, '3 attempts');
    expect(store.records.map((r) => r.next.state)).toEqual(['pending', 'pending', 'failed']);
    expect(store.records.map((r) => r.delivery.statusCode)).toEqual([500, 500, 500]);
    expect(seen).toEqual([false, false, false]);
    await polls(store);
    expect(rx.deliveries).toHaveLength(3);
    expect(store.records).toHaveLength(3);
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
    const slow = gate(); // answers only once the test is over
    rx.handle(async () => (await slow.opened, { status: 200 }));
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
    // The delivery log (the tenant's) says what kind of address was refused, never the address.
    expect(store.records[0]!.delivery.error).toBe(
      'refused: loopback address (hooks.example.test resolves to one); loopback addresses are not allowed (jobs.webhooks.allowLoopback)',
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
    expect(store.records[0]!.delivery.error).toMatch(/^refused: private address.*allowPrivate/);
    expect(store.records[0]!.delivery.error).not.toContain('169.254');
    expect(rx.deliveries).toHaveLength(0);
  });

  it('a failed connection to a resolved name does not tell the tenant the address (issue 14)', async () => {
    // A port nothing listens on any more.
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const job = makeJob({ webhookUrl: `http://hooks.example.test:${port}/hook` });
    const store = new FakeOutbox().add(job);
    dispatcher(store, { policy: policy({ allowLoopback: true }), resolve: async () => [{ address: '127.0.0.1', family: 4 }] });
    await until(() => store.records.length === 1);
    const error = store.records[0]!.delivery.error;
    expect(error).toMatch(/ECONNREFUSED/);
    expect(error).not.toContain('127.0.0.1');
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
    // Each delivery is held at the receiver until the test lets it go.
    const held: Array<() => void> = [];
    rx.handle(
      () =>
        new Promise((resolve) => {
          inFlight++;
          most = Math.max(most, inFlight);
          held.push(() => {
            inFlight--;
            resolve({ status: 200 });
          });
        }),
    );
    cleanups.push(() => held.splice(0).forEach((release) => release()));
    const jobs = Array.from({ length: 7 }, () => makeJob({ webhookUrl: rx.url }));
    const store = new FakeOutbox().add(...jobs);
    dispatcher(store, { concurrency: 2 });
    await until(() => held.length === 2, 'two deliveries at once');
    // Let the held deliveries go as they come, until all 7 are recorded.
    await vi.waitFor(
      () => {
        held.splice(0).forEach((release) => release());
        expect(store.records).toHaveLength(7);
      },
      { timeout: 10_000, interval: 5 },
    );
    expect(most).toBe(2);
    expect(store.claims.every((c) => c.limit >= 1 && c.limit <= 2)).toBe(true);
    expect(store.claims[0]).toEqual({ owner: 'proc-1', limit: 2, leaseMs: 10_000 + 5_000 });
    expect(rx.unique.size).toBe(7);
  });

  it('survives store failures: a failed claim is retried on the next poll, a failed record after the lease', async () => {
    const rx = await receiver();
    const job = makeJob({ webhookUrl: rx.url });
    const store = new FakeOutbox().add(job);
    store.failClaims = 2;
    store.failRecords = 1;
    // a short timeout makes the lease (timeoutMs + 5 s) the thing to wait for: fake the clock instead
    const clock = testClock();
    dispatcher(store, { now: clock.now });
    await rx.waitFor(1);
    await until(() => store.failRecords === 0, 'the failed record');
    expect(store.records).toHaveLength(0); // the record failed; the job stays leased
    await polls(store);
    expect(rx.deliveries).toHaveLength(1); // leased: not delivered again before the lease ends
    clock.advance(20_000); // the lease (timeoutMs + 5 s) passes
    await until(() => store.records.length === 1, 'the redelivery record');
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
    await until(() => store.records.length === 1, 'the woken delivery'); // the next poll is a minute away
  });

  it('stop() waits for deliveries in flight, then claims nothing more', async () => {
    const rx = await receiver();
    let entered = false;
    const slow = gate();
    rx.handle(async () => {
      entered = true;
      await slow.opened;
      return { status: 200 };
    });
    const job = makeJob({ webhookUrl: rx.url });
    const store = new FakeOutbox().add(job);
    const d = dispatcher(store);
    await until(() => entered);
    expect(d.active).toBe(1);
    const stopped = d.stop(60_000);
    expect(store.records).toHaveLength(0); // still held by the receiver
    slow.release();
    await stopped;
    expect(store.records).toHaveLength(1);
    expect(store.records[0]!.next.state).toBe('delivered');
    const claims = store.claims.length;
    store.add(makeJob({ webhookUrl: rx.url }));
    d.wake(); // a stopped dispatcher ignores it
    // A live dispatcher, started after the wake, finds the new job and delivers it; had the
    // stopped one polled on wake, its claim would have come first.
    dispatcher(store, { owner: 'proc-2' });
    await until(() => store.records.length === 2, 'the delivery by proc-2');
    expect(store.claims.slice(claims).map((c) => c.owner)).not.toContain('proc-1');
  });

  it('stop() gives up on a delivery still in flight after the grace period, without recording it', async () => {
    const rx = await receiver();
    let entered = false;
    const never = gate(); // the receiver answers only after the test
    rx.handle(async () => {
      entered = true;
      await never.opened;
      return { status: 200 };
    });
    const job = makeJob({ webhookUrl: rx.url });
    const store = new FakeOutbox().add(job);
    const lines: string[] = [];
    const log = createLogger('warn', { write: (s: string) => void lines.push(s) });
    const d = dispatcher(store, { log, policy: policy({ timeoutMs: 10_000 }) });
    await until(() => entered);
    await d.stop(100); // resolves although the delivery never answers: it gave up after the grace period
    expect(store.records).toHaveLength(0);
    expect(lines.join('\n')).toMatch(/redelivered/);
    expect(lines.join('\n')).not.toContain(MASTER);
  });
});
