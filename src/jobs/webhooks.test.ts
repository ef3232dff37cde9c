/**
 * The WebhookDispatcher delivering to a real receiver on loopback: the signed event and its
 * stable id, retries with backoff and Retry-After, giving up, redirects, timeouts.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { verifyWebhook } from '../observability/webhook.js';
// @ts-ignore TS6059: test helpers live outside tsconfig's rootDir (src); the import is type-checked all the same.
import { ACME_SECRET, FakeOutbox, MASTER, cleanUp, dispatcher, gate, makeJob, policy, polls, receiver, testClock, until } from '../../test/helpers/webhook-dispatcher.js';
import { tenantWebhookSecret } from './webhook-secret.js';
import { jobObject } from './wire.js';

afterEach(cleanUp);

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
});
