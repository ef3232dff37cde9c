/**
 * Behaviour every `JobStore` adapter must have (src/jobs/types.ts). An adapter's test file calls
 * `runJobStoreContract(name, factory)`; `factory` must return an empty store each time, with a
 * `close` that releases what it opened. Every time is the caller's (`now` arguments).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { JobError, JobRecord, JobStore, NewJob } from '../../src/jobs/types.js';

const T0 = Date.UTC(2025, 0, 1);
const LEASE = 30_000;

export interface JobStoreUnderTest {
  store: JobStore;
  close(): Promise<void>;
}

let counter = 0;
/** A unique job id of the real shape (`job_` + 24 hex). */
export function jobId(): string {
  return `job_${(++counter).toString(16).padStart(8, '0')}${Math.floor(Math.random() * 2 ** 32).toString(16).padStart(8, '0')}00000000`;
}

export function newJob(overrides: Partial<NewJob> = {}): NewJob {
  return {
    id: jobId(),
    tenantId: 'ten_a',
    keyId: 'key_a',
    userId: '',
    kind: 'chat',
    model: 'sim-small',
    body: { model: 'sim-small', messages: [{ role: 'user', content: 'hi' }] },
    priority: 4,
    webhookUrl: null,
    deadlineAt: null,
    metadata: {},
    idempotencyKey: null,
    batchId: null,
    customId: null,
    maxAttempts: 3,
    createdAt: T0,
    ...overrides,
  };
}

const UPSTREAM: JobError = { code: 'upstream_error', message: 'The provider failed.', status: 502 };
const OUTCOME = { result: { object: 'chat.completion', choices: [] }, costPico: 1_500, promptTokens: 10, completionTokens: 20 };

export function runJobStoreContract(name: string, factory: () => Promise<JobStoreUnderTest>): void {
  describe(`JobStore contract: ${name}`, () => {
    let subject: JobStoreUnderTest;
    let store: JobStore;

    beforeEach(async () => {
      subject = await factory();
      store = subject.store;
    });

    afterEach(async () => {
      await subject.close();
    });

    const add = async (overrides: Partial<NewJob> = {}): Promise<JobRecord> => (await store.enqueue(newJob(overrides))).job;
    const claimIds = async (owner: string, limit: number, now: number, excludeModels?: string[]) =>
      (await store.claim({ owner, limit, leaseMs: LEASE, now, ...(excludeModels ? { excludeModels } : {}) })).map((j) => j.id);
    const status = async (id: string) => (await store.get(id))?.status;

    describe('enqueue and get', () => {
      it('accepts a job as queued and gives it back whole, to its tenant only', async () => {
        const input = newJob({
          userId: 'user-1',
          kind: 'embeddings',
          model: 'sim-embed',
          body: { model: 'sim-embed', input: ['a', 'b'], nested: { z: 1, a: [true, null] } },
          priority: 1,
          webhookUrl: 'https://example.com/hook',
          deadlineAt: T0 + 60_000,
          metadata: { project: 'x', 'odd key.with "quotes"': 'ü' },
          idempotencyKey: 'idem-1',
          batchId: 'batch_1',
          customId: 'line-1',
          maxAttempts: 5,
        });
        const { job, created } = await store.enqueue(input);
        expect(created).toBe(true);
        const expected: Omit<JobRecord, 'seq'> = {
          id: input.id,
          tenantId: 'ten_a',
          keyId: 'key_a',
          userId: 'user-1',
          kind: 'embeddings',
          model: 'sim-embed',
          body: input.body,
          priority: 1,
          status: 'queued',
          webhookUrl: 'https://example.com/hook',
          deadlineAt: T0 + 60_000,
          metadata: input.metadata,
          idempotencyKey: 'idem-1',
          batchId: 'batch_1',
          customId: 'line-1',
          attempts: 0,
          maxAttempts: 5,
          result: null,
          error: null,
          deadLettered: false,
          costPico: 0,
          promptTokens: 0,
          completionTokens: 0,
          createdAt: T0,
          startedAt: null,
          finishedAt: null,
          runAfter: T0,
          leaseOwner: null,
          leaseUntil: null,
          webhook: null, // no outbox entry until the job ends
        };
        expect(job).toEqual({ ...expected, seq: expect.any(Number) });
        expect(await store.get(input.id)).toEqual(job);
        expect(await store.get(input.id, 'ten_a')).toEqual(job);
        expect(await store.get(input.id, 'ten_b')).toBeUndefined();
        expect(await store.get('job_unknown')).toBeUndefined();
      });

      it('numbers jobs in insertion order (seq)', async () => {
        const a = await add();
        const b = await add({ tenantId: 'ten_b' });
        const c = await add();
        expect(a.seq).toBeLessThan(b.seq);
        expect(b.seq).toBeLessThan(c.seq);
      });

      it('refuses a second job with the same id', async () => {
        const j = newJob();
        await store.enqueue(j);
        await expect(store.enqueue({ ...j, idempotencyKey: null })).rejects.toThrow();
      });
    });

    describe('idempotency keys', () => {
      it('returns the first job for the same tenant and key, and writes nothing', async () => {
        const first = await store.enqueue(newJob({ idempotencyKey: 'k1', body: { n: 1 } }));
        const again = await store.enqueue(newJob({ idempotencyKey: 'k1', body: { n: 2 } }));
        expect(again).toEqual({ job: first.job, created: false });
        expect((await store.list({ tenantId: 'ten_a', limit: 100 })).data.map((j) => j.id)).toEqual([first.job.id]);
      });

      it('keeps tenants apart, and jobs without a key never collide', async () => {
        const a = await store.enqueue(newJob({ idempotencyKey: 'k1' }));
        const b = await store.enqueue(newJob({ idempotencyKey: 'k1', tenantId: 'ten_b' }));
        expect(b.created).toBe(true);
        expect(b.job.id).not.toBe(a.job.id);
        const n1 = await store.enqueue(newJob());
        const n2 = await store.enqueue(newJob());
        expect([n1.created, n2.created]).toEqual([true, true]);
      });

      it('gives every concurrent enqueue of one key the same job', async () => {
        const results = await Promise.all(Array.from({ length: 8 }, () => store.enqueue(newJob({ idempotencyKey: 'race' }))));
        const ids = new Set(results.map((r) => r.job.id));
        expect(ids.size).toBe(1);
        expect(results.filter((r) => r.created)).toHaveLength(1);
        expect((await store.list({ tenantId: 'ten_a', limit: 100 })).data).toHaveLength(1);
      });
    });

    describe('list', () => {
      it('pages newest first with a cursor, and filters by status, model, batch and metadata', async () => {
        const jobs: JobRecord[] = [];
        for (let i = 0; i < 25; i++) {
          jobs.push(
            await add({
              model: i % 2 === 0 ? 'sim-small' : 'sim-large',
              batchId: i < 5 ? 'batch_x' : null,
              metadata: { parity: i % 2 === 0 ? 'even' : 'odd', n: String(i) },
              createdAt: T0 + i,
            }),
          );
        }
        await add({ tenantId: 'ten_b' }); // another tenant's: never listed
        const newestFirst = jobs.map((j) => j.id).reverse();

        const pages: string[][] = [];
        const more: boolean[] = [];
        let after: string | undefined;
        do {
          const page = await store.list({ tenantId: 'ten_a', limit: 10, ...(after ? { after } : {}) });
          pages.push(page.data.map((j) => j.id));
          more.push(page.hasMore);
          after = page.hasMore ? page.data.at(-1)!.id : undefined;
        } while (after);
        expect(pages.map((p) => p.length)).toEqual([10, 10, 5]);
        expect(more).toEqual([true, true, false]);
        expect(pages.flat()).toEqual(newestFirst);

        const ids = async (q: Omit<Parameters<JobStore['list']>[0], 'tenantId'>) =>
          (await store.list({ tenantId: 'ten_a', ...q })).data.map((j) => j.id);
        expect(await ids({ model: 'sim-large', limit: 100 })).toEqual(newestFirst.filter((_, i) => (24 - i) % 2 === 1));
        expect(await ids({ batchId: 'batch_x', limit: 100 })).toEqual(newestFirst.slice(20));
        expect(await ids({ metadata: { key: 'n', value: '7' }, limit: 100 })).toEqual([jobs[7]!.id]);
        expect(await ids({ metadata: { key: 'parity', value: 'odd' }, limit: 5 })).toEqual([23, 21, 19, 17, 15].map((i) => jobs[i]!.id));
        expect(await ids({ metadata: { key: 'missing', value: 'odd' }, limit: 100 })).toEqual([]);

        // Fairness: ten_a's first job, then ten_b's, then ten_a's second.
        const claimed = await store.claim({ owner: 'w1', limit: 3, leaseMs: LEASE, now: T0 + 100 });
        expect(claimed.map((j) => j.tenantId)).toEqual(['ten_a', 'ten_b', 'ten_a']);
        expect(await ids({ status: 'running', limit: 100 })).toEqual([jobs[1]!.id, jobs[0]!.id]);
        expect(await ids({ status: 'queued', limit: 100 })).toHaveLength(23);
        expect(await ids({ status: 'running', model: 'sim-large', limit: 100 })).toEqual([jobs[1]!.id]);

        const filtered = await store.list({ tenantId: 'ten_a', model: 'sim-small', limit: 4, after: jobs[20]!.id });
        expect(filtered.data.map((j) => j.id)).toEqual([18, 16, 14, 12].map((i) => jobs[i]!.id));
        expect(filtered.hasMore).toBe(true);
      });

      it('clamps the limit to 1..100; an unknown cursor gives an empty page', async () => {
        for (let i = 0; i < 3; i++) await add();
        expect((await store.list({ tenantId: 'ten_a', limit: 0 })).data).toHaveLength(1);
        expect((await store.list({ tenantId: 'ten_a', limit: 1000 })).data).toHaveLength(3);
        expect(await store.list({ tenantId: 'ten_a', limit: 10, after: 'job_unknown' })).toEqual({ data: [], hasMore: false });
      });
    });

    describe('claim', () => {
      it('leases a job: running, owner, lease end, attempts + 1, started once', async () => {
        const j = await add();
        const [claimed, ...rest] = await store.claim({ owner: 'w1', limit: 5, leaseMs: LEASE, now: T0 + 10 });
        expect(rest).toEqual([]);
        expect(claimed).toMatchObject({ id: j.id, status: 'running', leaseOwner: 'w1', leaseUntil: T0 + 10 + LEASE, attempts: 1, startedAt: T0 + 10 });
        expect(await store.get(j.id)).toEqual(claimed);
        expect(await claimIds('w2', 5, T0 + 20)).toEqual([]); // held
      });

      it('takes the lowest priority value first, then FIFO within a tenant', async () => {
        const low = await add({ priority: 5 });
        const high1 = await add({ priority: 0 });
        const mid = await add({ priority: 2 });
        const high2 = await add({ priority: 0 });
        expect(await claimIds('w1', 1, T0)).toEqual([high1.id]);
        expect(await claimIds('w1', 10, T0)).toEqual([high2.id, mid.id, low.id]);
      });

      it("is fair: a tenant with running jobs waits behind another tenant's single job", async () => {
        for (let i = 0; i < 3; i++) await add({ tenantId: 'ten_flood' });
        expect(await claimIds('w1', 3, T0)).toHaveLength(3); // ten_flood has 3 running
        const flood: JobRecord[] = [];
        for (let i = 0; i < 50; i++) flood.push(await add({ tenantId: 'ten_flood', createdAt: T0 + 1 }));
        const single = await add({ tenantId: 'ten_small', createdAt: T0 + 2 });
        expect(await claimIds('w1', 1, T0 + 3)).toEqual([single.id]);
        expect(await claimIds('w1', 2, T0 + 3)).toEqual([flood[0]!.id, flood[1]!.id]); // FIFO within the tenant
      });

      it('counts the jobs claimed earlier in the same call (round robin across tenants)', async () => {
        const a = [await add({ tenantId: 'a' }), await add({ tenantId: 'a' }), await add({ tenantId: 'a' })];
        const b = [await add({ tenantId: 'b' }), await add({ tenantId: 'b' })];
        const c = [await add({ tenantId: 'c' })];
        expect(await claimIds('w1', 5, T0)).toEqual([a[0]!.id, b[0]!.id, c[0]!.id, a[1]!.id, b[1]!.id]);
      });

      it('finds a free tenant behind hundreds of a busy tenant\'s queued jobs', async () => {
        await add({ tenantId: 'busy' });
        expect(await claimIds('w1', 1, T0)).toHaveLength(1);
        await store.enqueueMany(Array.from({ length: 400 }, () => newJob({ tenantId: 'busy' })));
        const other = await add({ tenantId: 'other' });
        const low = await add({ tenantId: 'late', priority: 9 });
        expect(await claimIds('w1', 1, T0 + 1)).toEqual([other.id]);
        const next = await store.claim({ owner: 'w1', limit: 1, leaseMs: LEASE, now: T0 + 1 });
        expect(next[0]?.tenantId).toBe('busy');
        expect(next[0]?.id).not.toBe(low.id);
        const more = [await add({ tenantId: 'more1' }), await add({ tenantId: 'more2' })];
        const three = await store.claim({ owner: 'w1', limit: 3, leaseMs: LEASE, now: T0 + 2 });
        expect(three.map((j) => j.tenantId)).toEqual(['more1', 'more2', 'busy']);
        expect(three.slice(0, 2).map((j) => j.id)).toEqual(more.map((j) => j.id));
      });

      it('claims several jobs across priorities as repeated single claims would', async () => {
        const a1 = await add({ tenantId: 'a', priority: 0 });
        const a2 = await add({ tenantId: 'a', priority: 1 });
        const b1 = await add({ tenantId: 'b', priority: 1 });
        const b2 = await add({ tenantId: 'b', priority: 1 });
        const c1 = await add({ tenantId: 'c', priority: 0 });
        // Priority 0 first (a1, c1); then at priority 1, b (nothing running) before a (one running).
        expect(await claimIds('w1', 4, T0)).toEqual([a1.id, c1.id, b1.id, a2.id]);
        expect(await claimIds('w1', 4, T0)).toEqual([b2.id]);
      });

      it('weighs priority before fairness', async () => {
        await add({ tenantId: 'a', priority: 0 });
        await claimIds('w1', 1, T0);
        const aUrgent = await add({ tenantId: 'a', priority: 0 });
        await add({ tenantId: 'b', priority: 3 });
        expect(await claimIds('w1', 1, T0)).toEqual([aUrgent.id]);
      });

      it('skips jobs whose runAfter is in the future until then', async () => {
        const j = await add();
        await claimIds('w1', 1, T0);
        expect(await store.fail(j.id, 'w1', { error: UPSTREAM, retryAt: T0 + 5_000 }, T0 + 1)).toBe(true);
        const other = await add({ createdAt: T0 + 2 });
        expect(await claimIds('w2', 5, T0 + 4_999)).toEqual([other.id]);
        expect(await claimIds('w2', 5, T0 + 4_999)).toEqual([]);
        expect(await claimIds('w2', 5, T0 + 5_000)).toEqual([j.id]);
      });

      it('skips the models it is told to exclude', async () => {
        const small = await add({ model: 'sim-small' });
        const large = await add({ model: 'sim-large' });
        const embed = await add({ model: 'sim-embed', tenantId: 'ten_b' });
        expect(await claimIds('w1', 5, T0, ['sim-small', 'sim-embed'])).toEqual([large.id]);
        expect(await claimIds('w1', 5, T0, ['sim-small'])).toEqual([embed.id]);
        expect(await claimIds('w1', 5, T0, [])).toEqual([small.id]);
      });

      it('hands a job whose lease passed to another owner; the old owner can no longer finish it', async () => {
        const j = await add();
        await store.claim({ owner: 'w1', limit: 1, leaseMs: 1_000, now: T0 });
        expect(await claimIds('w2', 1, T0 + 1_000)).toEqual([]); // the lease lasts until T0 + 1000 inclusive
        const [taken] = await store.claim({ owner: 'w2', limit: 1, leaseMs: 1_000, now: T0 + 1_001 });
        expect(taken).toMatchObject({ id: j.id, status: 'running', leaseOwner: 'w2', attempts: 2, startedAt: T0 });
        expect(await store.complete(j.id, 'w1', OUTCOME, T0 + 1_002)).toBe(false);
        expect(await store.heartbeat('w1', [j.id], LEASE, T0 + 1_002)).toEqual([]);
        expect(await store.complete(j.id, 'w2', OUTCOME, T0 + 1_003)).toBe(true);
      });

      it('weighs a taken-over job like a queued one (priority, then fairness, then age)', async () => {
        const old = await add({ priority: 1 });
        await store.claim({ owner: 'dead', limit: 1, leaseMs: 1_000, now: T0 });
        const fresh = await add({ priority: 1, tenantId: 'ten_b' });
        const urgent = await add({ priority: 0, tenantId: 'ten_c' });
        expect(await claimIds('w2', 3, T0 + 5_000)).toEqual([urgent.id, old.id, fresh.id]);
      });
    });

    describe('heartbeat', () => {
      it('extends only the leases the owner still holds, even past their end if nobody took them', async () => {
        const a = await add();
        const b = await add();
        await store.claim({ owner: 'w1', limit: 2, leaseMs: 1_000, now: T0 });
        const c = await add({ tenantId: 'ten_b' });
        await store.claim({ owner: 'w2', limit: 1, leaseMs: 1_000, now: T0 });
        await store.cancel(b.id, 'ten_a', T0 + 10);
        expect(await store.heartbeat('w1', [a.id, b.id, c.id, 'job_unknown'], 5_000, T0 + 1_500)).toEqual([a.id]);
        expect((await store.get(a.id))?.leaseUntil).toBe(T0 + 6_500);
        expect((await store.get(c.id))?.leaseUntil).toBe(T0 + 1_000);
        expect(await store.heartbeat('w1', [], 5_000, T0)).toEqual([]);
      });
    });

    describe('complete, fail, release', () => {
      it('complete stores the result, adds the cost and tokens, ends the lease; only once', async () => {
        const j = await add();
        await claimIds('w1', 1, T0);
        const big = { ...OUTCOME, costPico: 3_000_000_000_123 };
        expect(await store.complete(j.id, 'w1', big, T0 + 500)).toBe(true);
        expect(await store.get(j.id)).toMatchObject({
          status: 'succeeded',
          result: OUTCOME.result,
          error: null,
          costPico: 3_000_000_000_123,
          promptTokens: 10,
          completionTokens: 20,
          finishedAt: T0 + 500,
          leaseOwner: null,
          leaseUntil: null,
          attempts: 1,
        });
        expect(await store.complete(j.id, 'w1', OUTCOME, T0 + 600)).toBe(false);
        expect(await store.complete(j.id, 'w2', OUTCOME, T0 + 600)).toBe(false);
        expect(await store.complete('job_unknown', 'w1', OUTCOME, T0 + 600)).toBe(false);
      });

      it('fail with retryAt re-queues while attempts remain, keeping the error and the cost so far', async () => {
        const j = await add({ maxAttempts: 3 });
        await claimIds('w1', 1, T0);
        expect(await store.fail(j.id, 'w1', { error: UPSTREAM, retryAt: T0 + 2_000, costPico: 100, promptTokens: 5 }, T0 + 100)).toBe(true);
        expect(await store.get(j.id)).toMatchObject({
          status: 'queued',
          runAfter: T0 + 2_000,
          error: UPSTREAM,
          attempts: 1,
          leaseOwner: null,
          leaseUntil: null,
          finishedAt: null,
          deadLettered: false,
          costPico: 100,
          promptTokens: 5,
          completionTokens: 0,
          webhook: null,
        });
        expect(await store.fail(j.id, 'w1', { error: UPSTREAM }, T0 + 200)).toBe(false); // no longer held
        await claimIds('w2', 1, T0 + 2_000);
        expect(await store.complete(j.id, 'w2', OUTCOME, T0 + 2_500)).toBe(true);
        expect(await store.get(j.id)).toMatchObject({ status: 'succeeded', attempts: 2, costPico: 1_600, promptTokens: 15, completionTokens: 20, startedAt: T0 });
      });

      it('dead-letters a job that used up its attempts on a retryable failure', async () => {
        const j = await add({ maxAttempts: 2 });
        await claimIds('w1', 1, T0);
        await store.fail(j.id, 'w1', { error: UPSTREAM, retryAt: T0 + 10 }, T0 + 1);
        await claimIds('w1', 1, T0 + 10);
        const last: JobError = { code: 'upstream_timeout', message: 'Timed out.', status: 504 };
        expect(await store.fail(j.id, 'w1', { error: last, retryAt: T0 + 20, costPico: 7 }, T0 + 11)).toBe(true);
        expect(await store.get(j.id)).toMatchObject({
          status: 'failed',
          deadLettered: true,
          error: last,
          attempts: 2,
          finishedAt: T0 + 11,
          costPico: 7,
          leaseOwner: null,
        });
        expect(await claimIds('w1', 1, T0 + 100)).toEqual([]);
      });

      it('fails for good without retryAt (not dead-lettered), or ends it expired when told', async () => {
        const a = await add();
        const b = await add();
        await claimIds('w1', 2, T0);
        expect(await store.fail(a.id, 'w1', { error: { code: 'invalid_request', message: 'bad', status: 400 } }, T0 + 1)).toBe(true);
        expect(await store.get(a.id)).toMatchObject({ status: 'failed', deadLettered: false, finishedAt: T0 + 1, attempts: 1 });
        const late: JobError = { code: 'deadline_exceeded', message: 'late', status: 408 };
        expect(await store.fail(b.id, 'w1', { error: late, status: 'expired' }, T0 + 2)).toBe(true);
        expect(await store.get(b.id)).toMatchObject({ status: 'expired', deadLettered: false, error: late, finishedAt: T0 + 2 });
      });

      it('release hands the job back without counting the attempt', async () => {
        const j = await add();
        await claimIds('w1', 1, T0);
        expect(await store.release(j.id, 'w2', T0 + 1)).toBe(false);
        expect(await store.release(j.id, 'w1', T0 + 1)).toBe(true);
        expect(await store.get(j.id)).toMatchObject({ status: 'queued', attempts: 0, leaseOwner: null, leaseUntil: null, runAfter: T0 + 1 });
        expect(await store.release(j.id, 'w1', T0 + 2)).toBe(false);
        await claimIds('w1', 1, T0 + 3);
        expect(await store.release(j.id, 'w1', T0 + 4, T0 + 1_000)).toBe(true); // rate limited: back at T0 + 1000
        expect(await claimIds('w1', 1, T0 + 999)).toEqual([]);
        const [again] = await store.claim({ owner: 'w1', limit: 1, leaseMs: LEASE, now: T0 + 1_000 });
        expect(again).toMatchObject({ id: j.id, attempts: 1, startedAt: T0 });
      });
    });

    describe('cancel', () => {
      it('cancels a queued job; a terminal job is returned unchanged; unknown or foreign is undefined', async () => {
        const j = await add();
        const cancelled = await store.cancel(j.id, 'ten_a', T0 + 5);
        expect(cancelled).toMatchObject({ id: j.id, status: 'cancelled', finishedAt: T0 + 5 });
        expect(await store.get(j.id)).toEqual(cancelled);
        expect(await store.cancel(j.id, 'ten_a', T0 + 9)).toEqual(cancelled);
        expect(await store.cancel(j.id, 'ten_b', T0 + 9)).toBeUndefined();
        expect(await store.cancel('job_unknown', 'ten_a', T0 + 9)).toBeUndefined();
        expect(await claimIds('w1', 1, T0 + 10)).toEqual([]);
        const done = await add();
        await claimIds('w1', 1, T0);
        await store.complete(done.id, 'w1', OUTCOME, T0 + 1);
        expect(await store.cancel(done.id, 'ten_a', T0 + 2)).toMatchObject({ status: 'succeeded', finishedAt: T0 + 1 });
      });

      it("cancels a running job: the lease is dropped and the owner's completion is refused", async () => {
        const j = await add();
        await claimIds('w1', 1, T0);
        expect(await store.cancel(j.id, 'ten_a', T0 + 5)).toMatchObject({ status: 'cancelled', leaseOwner: null, leaseUntil: null, finishedAt: T0 + 5 });
        expect(await store.complete(j.id, 'w1', OUTCOME, T0 + 6)).toBe(false);
        expect(await store.fail(j.id, 'w1', { error: UPSTREAM, retryAt: T0 + 7 }, T0 + 6)).toBe(false);
        expect(await store.release(j.id, 'w1', T0 + 6)).toBe(false);
        expect(await status(j.id)).toBe('cancelled');
      });

      it('cancelBatch cancels the queued and running jobs of one batch', async () => {
        const done = await add({ batchId: 'batch_1' });
        await claimIds('w1', 1, T0);
        await store.complete(done.id, 'w1', OUTCOME, T0 + 1);
        const running = await add({ batchId: 'batch_1' });
        await claimIds('w1', 1, T0 + 2);
        const queued = [await add({ batchId: 'batch_1' }), await add({ batchId: 'batch_1' })];
        const other = await add({ batchId: 'batch_2' });
        expect(await store.cancelBatch('batch_1', T0 + 10)).toBe(3);
        expect(await status(done.id)).toBe('succeeded');
        for (const j of [running, ...queued]) expect(await store.get(j.id)).toMatchObject({ status: 'cancelled', finishedAt: T0 + 10, leaseOwner: null });
        expect(await status(other.id)).toBe('queued');
        expect(await store.cancelBatch('batch_1', T0 + 11)).toBe(0);
      });
    });

    describe('expire', () => {
      it('ends queued jobs past their deadline, and running ones only once their lease passed too', async () => {
        const queued = await add({ deadlineAt: T0 + 1_000 });
        const notYet = await add({ deadlineAt: T0 + 5_000 });
        const none = await add();
        const held = await add({ deadlineAt: T0 + 1_000, tenantId: 'ten_b', priority: 0 });
        const orphan = await add({ deadlineAt: T0 + 1_000, tenantId: 'ten_c', priority: 0 });
        await store.claim({ owner: 'w1', limit: 1, leaseMs: 10_000, now: T0 }); // held
        await store.claim({ owner: 'w2', limit: 1, leaseMs: 500, now: T0 }); // orphan: its lease ends at T0 + 500
        expect((await store.get(held.id))?.leaseOwner).toBe('w1');

        const ended = await store.expire(T0 + 1_000);
        expect(ended.map((j) => j.id).sort()).toEqual([queued.id, orphan.id].sort());
        const deadline: JobError = { code: 'deadline_exceeded', message: 'The job did not finish before its deadline.', status: 408 };
        for (const j of ended) expect(j).toMatchObject({ status: 'expired', error: deadline, finishedAt: T0 + 1_000, leaseOwner: null, leaseUntil: null });
        expect(await store.get(queued.id)).toEqual(ended.find((j) => j.id === queued.id));
        expect(await status(notYet.id)).toBe('queued');
        expect(await status(none.id)).toBe('queued');
        expect(await status(held.id)).toBe('running');
        expect(await store.expire(T0 + 1_000)).toEqual([]);
        expect(await store.complete(orphan.id, 'w2', OUTCOME, T0 + 1_001)).toBe(false);
      });
    });

    describe('webhook outbox', () => {
      const HOOK = 'https://example.com/hook';

      it('writes a pending entry with each terminal status of a job that has a webhook URL', async () => {
        const pending = (now: number) => ({ state: 'pending', attempts: 0, nextAt: now });
        const ok = await add({ webhookUrl: HOOK });
        const failed = await add({ webhookUrl: HOOK });
        const retried = await add({ webhookUrl: HOOK });
        const noHook = await add();
        await claimIds('w1', 4, T0);
        await store.complete(ok.id, 'w1', OUTCOME, T0 + 1);
        await store.fail(failed.id, 'w1', { error: UPSTREAM }, T0 + 2);
        await store.fail(retried.id, 'w1', { error: UPSTREAM, retryAt: T0 + 100 }, T0 + 3);
        await store.complete(noHook.id, 'w1', OUTCOME, T0 + 4);
        expect((await store.get(ok.id))?.webhook).toEqual(pending(T0 + 1));
        expect((await store.get(failed.id))?.webhook).toEqual(pending(T0 + 2));
        expect((await store.get(retried.id))?.webhook).toBeNull(); // not ended
        expect((await store.get(noHook.id))?.webhook).toBeNull();

        const cancelled = await add({ webhookUrl: HOOK });
        expect((await store.cancel(cancelled.id, 'ten_a', T0 + 5))?.webhook).toEqual(pending(T0 + 5));
        const inBatch = await add({ webhookUrl: HOOK, batchId: 'batch_w' });
        await store.cancelBatch('batch_w', T0 + 6);
        expect((await store.get(inBatch.id))?.webhook).toEqual(pending(T0 + 6));
        const late = await add({ webhookUrl: HOOK, deadlineAt: T0 + 7 });
        const [expired] = await store.expire(T0 + 7);
        expect(expired).toMatchObject({ id: late.id, webhook: pending(T0 + 7) });
        const deadLettered = await add({ webhookUrl: HOOK, maxAttempts: 1 });
        await claimIds('w1', 5, T0 + 200);
        await store.fail(deadLettered.id, 'w1', { error: UPSTREAM, retryAt: T0 + 300 }, T0 + 8);
        expect(await store.get(deadLettered.id)).toMatchObject({ status: 'failed', deadLettered: true, webhook: pending(T0 + 8) });
      });

      it('leases due deliveries (oldest due first) so another dispatcher does not take them meanwhile', async () => {
        const jobs: JobRecord[] = [];
        for (let i = 0; i < 3; i++) jobs.push(await add({ webhookUrl: HOOK }));
        await claimIds('w1', 3, T0);
        await store.complete(jobs[2]!.id, 'w1', OUTCOME, T0 + 1);
        await store.complete(jobs[0]!.id, 'w1', OUTCOME, T0 + 2);
        await store.complete(jobs[1]!.id, 'w1', OUTCOME, T0 + 3);

        expect(await store.claimWebhooks({ owner: 'd1', limit: 5, leaseMs: 1_000, now: T0 })).toEqual([]); // none due yet
        const first = await store.claimWebhooks({ owner: 'd1', limit: 2, leaseMs: 1_000, now: T0 + 10 });
        expect(first.map((j) => j.id)).toEqual([jobs[2]!.id, jobs[0]!.id]);
        expect(first.map((j) => j.webhook)).toEqual([
          { state: 'pending', attempts: 0, nextAt: T0 + 1_010 },
          { state: 'pending', attempts: 0, nextAt: T0 + 1_010 },
        ]);
        expect(first[0]).toMatchObject({ status: 'succeeded', webhookUrl: HOOK, result: OUTCOME.result });
        expect((await store.claimWebhooks({ owner: 'd2', limit: 5, leaseMs: 1_000, now: T0 + 20 })).map((j) => j.id)).toEqual([jobs[1]!.id]);
        expect(await store.claimWebhooks({ owner: 'd2', limit: 5, leaseMs: 1_000, now: T0 + 30 })).toEqual([]);
        // d1 died: its deliveries are due again once the lease passed (same due time: by seq).
        expect((await store.claimWebhooks({ owner: 'd2', limit: 5, leaseMs: 1_000, now: T0 + 1_010 })).map((j) => j.id)).toEqual([
          jobs[0]!.id,
          jobs[2]!.id,
        ]);
      });

      it('records delivery attempts and the next state; lists them oldest first', async () => {
        const j = await add({ webhookUrl: HOOK });
        await claimIds('w1', 1, T0);
        await store.complete(j.id, 'w1', OUTCOME, T0 + 1);
        await store.claimWebhooks({ owner: 'd1', limit: 1, leaseMs: 1_000, now: T0 + 2 });
        await store.recordDelivery(
          { jobId: j.id, attempt: 1, at: T0 + 3, statusCode: 500, error: 'HTTP 500', durationMs: 12 },
          { state: 'pending', nextAt: T0 + 5_000 },
        );
        expect((await store.get(j.id))?.webhook).toEqual({ state: 'pending', attempts: 1, nextAt: T0 + 5_000 });
        expect(await store.claimWebhooks({ owner: 'd1', limit: 1, leaseMs: 1_000, now: T0 + 4_999 })).toEqual([]);
        const [again] = await store.claimWebhooks({ owner: 'd1', limit: 1, leaseMs: 1_000, now: T0 + 5_000 });
        expect(again?.webhook?.attempts).toBe(1);
        await store.recordDelivery(
          { jobId: j.id, attempt: 2, at: T0 + 5_001, statusCode: null, error: 'timed out', durationMs: 10_000 },
          { state: 'pending', nextAt: T0 + 9_000 },
        );
        await store.recordDelivery({ jobId: j.id, attempt: 3, at: T0 + 9_001, statusCode: 204, error: '', durationMs: 3 }, { state: 'delivered', nextAt: T0 + 9_001 });
        expect((await store.get(j.id))?.webhook).toEqual({ state: 'delivered', attempts: 3, nextAt: T0 + 9_001 });
        expect(await store.claimWebhooks({ owner: 'd1', limit: 5, leaseMs: 1_000, now: T0 + 99_999 })).toEqual([]);
        expect(await store.deliveries(j.id)).toEqual([
          { jobId: j.id, attempt: 1, at: T0 + 3, statusCode: 500, error: 'HTTP 500', durationMs: 12 },
          { jobId: j.id, attempt: 2, at: T0 + 5_001, statusCode: null, error: 'timed out', durationMs: 10_000 },
          { jobId: j.id, attempt: 3, at: T0 + 9_001, statusCode: 204, error: '', durationMs: 3 },
        ]);
        expect(await store.deliveries('job_unknown')).toEqual([]);
      });

      it('never claims a given-up webhook again', async () => {
        const j = await add({ webhookUrl: HOOK });
        await claimIds('w1', 1, T0);
        await store.complete(j.id, 'w1', OUTCOME, T0 + 1);
        await store.recordDelivery({ jobId: j.id, attempt: 1, at: T0 + 2, statusCode: 410, error: 'HTTP 410', durationMs: 1 }, { state: 'failed', nextAt: T0 + 2 });
        expect((await store.get(j.id))?.webhook).toEqual({ state: 'failed', attempts: 1, nextAt: T0 + 2 });
        expect(await store.claimWebhooks({ owner: 'd1', limit: 5, leaseMs: 1_000, now: T0 + 10_000 })).toEqual([]);
      });
    });

    describe('retention', () => {
      it('deletes finished jobs that ended before the cut (oldest first, up to the limit) with their delivery logs; keeps the rest', async () => {
        const HOOK = 'https://example.com/hook';
        const done = await add();
        const failed = await add();
        const cancelled = await add();
        const recent = await add();
        const queued = await add();
        const running = await add();
        const hookPending = await add({ webhookUrl: HOOK });
        const hookDelivered = await add({ webhookUrl: HOOK });
        expect(await claimIds('w1', 8, T0)).toHaveLength(8);
        await store.complete(done.id, 'w1', OUTCOME, T0 + 1);
        await store.fail(failed.id, 'w1', { error: UPSTREAM }, T0 + 2);
        await store.cancel(cancelled.id, 'ten_a', T0 + 3);
        await store.complete(hookPending.id, 'w1', OUTCOME, T0 + 4);
        await store.complete(hookDelivered.id, 'w1', OUTCOME, T0 + 5);
        await store.recordDelivery({ jobId: hookDelivered.id, attempt: 1, at: T0 + 6, statusCode: 204, error: '', durationMs: 1 }, { state: 'delivered', nextAt: T0 + 6 });
        await store.complete(recent.id, 'w1', OUTCOME, T0 + 1_000);
        void running;
        await store.cancel(queued.id, 'ten_a', T0 + 2_000); // finished after the cut
        const q2 = await add();

        expect(await store.deleteFinished(T0 + 100, 2)).toBe(2); // the two oldest: done, failed
        expect(await store.get(done.id)).toBeUndefined();
        expect(await store.get(failed.id)).toBeUndefined();
        expect(await store.deleteFinished(T0 + 100, 100)).toBe(2); // cancelled, hookDelivered (not the pending webhook)
        expect(await store.get(cancelled.id)).toBeUndefined();
        expect(await store.get(hookDelivered.id)).toBeUndefined();
        expect(await store.deliveries(hookDelivered.id)).toEqual([]);
        expect(await store.deleteFinished(T0 + 100, 100)).toBe(0);
        for (const kept of [recent, queued, running, hookPending, q2]) expect(await store.get(kept.id)).toBeDefined();
        expect(await store.deleteFinished(T0 + 100, 0)).toBe(0);
      });
    });

    describe('stats and batches', () => {
      it('counts queued (backed-off included) and running jobs per priority, with the oldest queued', async () => {
        expect(await store.stats(T0)).toEqual({ byPriority: [] });
        await add({ priority: 3, createdAt: T0 + 5 });
        await add({ priority: 3, createdAt: T0 + 2 });
        await add({ priority: 0, createdAt: T0 + 1 });
        await add({ priority: 6, createdAt: T0 + 9 });
        await claimIds('w1', 2, T0 + 10); // priority 0's, then priority 3's first enqueued (createdAt T0 + 5)
        const backedOff = await add({ priority: 6, createdAt: T0 + 3, model: 'sim-x' });
        expect(await claimIds('w1', 1, T0 + 10, ['sim-small'])).toEqual([backedOff.id]);
        await store.fail(backedOff.id, 'w1', { error: UPSTREAM, retryAt: T0 + 99_999 }, T0 + 10); // queued, not claimable yet
        await add({ priority: 3, createdAt: T0 + 11 });
        expect(await store.stats(T0 + 20)).toEqual({
          byPriority: [
            { priority: 0, queued: 0, oldestCreatedAt: null, running: 1 },
            { priority: 3, queued: 2, oldestCreatedAt: T0 + 2, running: 1 },
            { priority: 6, queued: 2, oldestCreatedAt: T0 + 3, running: 0 },
          ],
        });
      });

      it('counts a batch\'s jobs by status and lists them in line order', async () => {
        const lines = Array.from({ length: 5 }, (_, i) => newJob({ batchId: 'batch_b', customId: `line-${i}` }));
        await store.enqueueMany(lines);
        await add({ batchId: 'batch_other' });
        await claimIds('w1', 2, T0);
        await store.complete(lines[0]!.id, 'w1', OUTCOME, T0 + 1);
        await store.cancel(lines[4]!.id, 'ten_a', T0 + 2);
        expect(await store.batchCounts('batch_b')).toEqual({ succeeded: 1, running: 1, queued: 2, cancelled: 1 });
        expect(await store.batchCounts('batch_none')).toEqual({});
        const jobs = await store.batchJobs('batch_b');
        expect(jobs.map((j) => j.customId)).toEqual(['line-0', 'line-1', 'line-2', 'line-3', 'line-4']);
        expect(jobs.map((j) => j.seq)).toEqual([...jobs.map((j) => j.seq)].sort((a, b) => a - b));
        expect(await store.batchJobs('batch_none')).toEqual([]);
      });

      it('enqueueMany writes all jobs or none', async () => {
        const existing = await add();
        const dupInList = [newJob(), newJob()];
        dupInList.push({ ...dupInList[0]!, customId: 'again' });
        await expect(store.enqueueMany(dupInList)).rejects.toThrow();
        await expect(store.enqueueMany([newJob(), newJob({ id: existing.id })])).rejects.toThrow();
        expect((await store.list({ tenantId: 'ten_a', limit: 100 })).data.map((j) => j.id)).toEqual([existing.id]);
        await store.enqueueMany([]);
        const many = Array.from({ length: 1_200 }, (_, i) => newJob({ batchId: 'batch_big', customId: String(i), metadata: { i: String(i) } }));
        await store.enqueueMany(many);
        const stored = await store.batchJobs('batch_big');
        expect(stored.map((j) => j.customId)).toEqual(many.map((j) => j.customId));
        expect(stored[7]).toMatchObject({ id: many[7]!.id, status: 'queued', metadata: { i: '7' }, body: many[7]!.body, runAfter: T0, attempts: 0 });
      });
    });
  });
}
