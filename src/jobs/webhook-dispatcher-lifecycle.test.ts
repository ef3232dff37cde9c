/**
 * The WebhookDispatcher's own running: no more deliveries in flight than its slots, store
 * failures survived, wake(), and stop() with and without deliveries that outlive the grace period.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../observability/logger.js';
// @ts-ignore TS6059: test helpers live outside tsconfig's rootDir (src); the import is type-checked all the same.
import { FakeOutbox, MASTER, cleanUp, cleanups, dispatcher, heldReceiver, makeJob, policy, polls, receiver, testClock, until } from '../../test/helpers/webhook-dispatcher.js';

afterEach(cleanUp);

describe('WebhookDispatcher: slots, store failures, wake and stop', () => {
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
    const { rx, held: slow, state } = await heldReceiver();
    const job = makeJob({ webhookUrl: rx.url });
    const store = new FakeOutbox().add(job);
    const d = dispatcher(store);
    await until(() => state.entered);
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
    const { rx, state } = await heldReceiver(); // the receiver answers only after the test
    const job = makeJob({ webhookUrl: rx.url });
    const store = new FakeOutbox().add(job);
    const lines: string[] = [];
    const log = createLogger('warn', { write: (s: string) => void lines.push(s) });
    const d = dispatcher(store, { log, policy: policy({ timeoutMs: 10_000 }) });
    await until(() => state.entered);
    await d.stop(100); // resolves although the delivery never answers: it gave up after the grace period
    expect(store.records).toHaveLength(0);
    expect(lines.join('\n')).toMatch(/redelivered/);
    expect(lines.join('\n')).not.toContain(MASTER);
  });
});
