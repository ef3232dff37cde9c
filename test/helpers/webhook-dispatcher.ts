/**
 * The WebhookDispatcher's test bench (src/jobs/webhook*.test.ts): a JobStore's webhook outbox in
 * memory, finished jobs, a signing receiver on loopback, a clock the test moves, and waits on
 * what happened (the timeouts only bound a failure).
 */
import { expect, vi } from 'vitest';
import { webhookPolicySchema, type WebhookPolicy } from '../../src/config/jobs-schema.js';
import type { JobRecord, JobStore, WebhookDelivery, WebhookState } from '../../src/jobs/types.js';
import { tenantWebhookSecret } from '../../src/jobs/webhook-secret.js';
import { WebhookDispatcher, type WebhookDispatcherOptions } from '../../src/jobs/webhooks.js';
import { createLogger } from '../../src/observability/logger.js';
// @ts-ignore TS6059: test helpers live outside tsconfig's rootDir (src); the import is type-checked all the same.
import { startWebhookReceiver, type WebhookReceiver } from './webhook-receiver.js';

export const MASTER = 'test-master-secret-0123456789';
export const ACME_SECRET = tenantWebhookSecret(MASTER, 'acme');

export const policy = (over: Partial<WebhookPolicy> = {}): WebhookPolicy => ({
  ...webhookPolicySchema.parse({}),
  allowLoopback: true,
  timeoutMs: 10_000, // only bounds a failure: a loopback delivery never comes near it
  baseDelayMs: 20,
  maxDelayMs: 1_000,
  ...over,
});

let seq = 0;
export function makeJob(over: Partial<JobRecord> = {}): JobRecord {
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
export class FakeOutbox implements Pick<JobStore, 'claimWebhooks' | 'recordDelivery'> {
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
export async function until(cond: () => boolean, what = 'condition'): Promise<void> {
  await vi.waitFor(() => expect(cond(), `waiting for ${what}`).toBe(true), { timeout: 10_000, interval: 5 });
}

/**
 * Waits until the dispatcher has polled the outbox `n` more times (each poll is one claim): what
 * was not delivered by then was not due. The proof that something does NOT happen.
 */
export async function polls(store: FakeOutbox, n = 3): Promise<void> {
  const from = store.claims.length;
  await until(() => store.claims.length >= from + n, `${n} more polls`);
}

/** The dispatcher's clock, moved by the test (backoffs and leases pass without waiting). */
export function testClock() {
  let t = Date.now();
  return {
    now: () => t,
    advance(ms: number) {
      t += ms;
    },
  };
}

/** A receiver reply held until the test releases it (a slow receiver, with no timer to race). */
export function gate() {
  let release!: () => void;
  const opened = new Promise<void>((r) => (release = r));
  cleanups.push(() => release()); // never leave a request hanging at the end of a test
  return { opened, release };
}

export const silent = createLogger('silent');
export const cleanups: Array<() => Promise<unknown> | unknown> = [];
/** Runs the cleanups of the test that ended (receivers closed, dispatchers stopped, held answers let go): `afterEach(cleanUp)`. */
export async function cleanUp(): Promise<void> {
  while (cleanups.length) await cleanups.pop()!();
}

export async function receiver(secret = ACME_SECRET): Promise<WebhookReceiver> {
  const rx = await startWebhookReceiver({ secret });
  cleanups.push(() => rx.close());
  return rx;
}

export function dispatcher(store: FakeOutbox, opts: Partial<WebhookDispatcherOptions> = {}): WebhookDispatcher {
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

/**
 * A receiver that holds every answer until the test releases `held` (a slow receiver, with no
 * timer to race); `state.entered` turns true when a request arrives.
 */
export async function heldReceiver(): Promise<{ rx: WebhookReceiver; held: ReturnType<typeof gate>; state: { entered: boolean } }> {
  const rx = await receiver();
  const held = gate();
  const state = { entered: false };
  rx.handle(async () => {
    state.entered = true;
    await held.opened;
    return { status: 200 };
  });
  return { rx, held, state };
}

