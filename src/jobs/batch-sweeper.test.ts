/**
 * The batch sweeper (src/jobs/batch-sweeper.ts) on the SQLite adapters: two processes at once,
 * a finalization, cancel or validation cut short and resumed from the store, pokes, and the
 * deletion of expired files and of finished jobs past their retention.
 */
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { GatewayError } from '../errors.js';
// @ts-ignore TS6059: test helpers live outside tsconfig's rootDir (src); the import is type-checked all the same.
import { auth, chatLine, claimAll, content, createBatch, loadCatalog, setupEach, succeed, upload } from '../../test/helpers/batches.js';

beforeAll(loadCatalog);

describe('the batch sweeper', () => {
  const s = setupEach();

  it('two processes sweeping at once: one finalizes, one output file', async () => {
    const batch = await createBatch(s, [chatLine('a'), chatLine('b')]);
    for (const job of (await claimAll(s)).values()) await succeed(s, job);
    await Promise.all([s.batches.sweep(), s.peer().sweep(), s.peer().sweep()]);
    const done = await s.batches.get(auth, batch.id);
    expect(done.status).toBe('completed');
    const outputs = (await s.files.listFiles(auth.tenantId, { purpose: 'batch_output', limit: 100 })).data;
    expect(outputs.map((f) => f.id)).toEqual([done.outputFileId]);
  });

  it('a finalization cut short (its process died) is resumed by a later sweep, from the store', async () => {
    const batch = await createBatch(s, [chatLine('a')]);
    await succeed(s, (await claimAll(s)).get('a')!);
    // What a process that died after taking the batch leaves behind.
    await s.files.updateBatch(batch.id, ['in_progress'], { status: 'finalizing', finalizingAt: s.clock.now });
    const peer = s.peer();
    await peer.sweep();
    expect((await s.batches.get(auth, batch.id)).status).toBe('finalizing'); // not yet: it may still be working
    s.clock.now += 61_000;
    await peer.sweep();
    const done = await s.batches.get(auth, batch.id);
    expect([done.status, done.completedAt]).toEqual(['completed', s.clock.now]);
    expect(await content(s, done.outputFileId)).toHaveLength(1);
  });

  it('a cancel cut short (jobs left queued) is finished by the sweep', async () => {
    const batch = await createBatch(s, [chatLine('a'), chatLine('b')]);
    await s.files.updateBatch(batch.id, ['in_progress'], { status: 'cancelling', cancellingAt: s.clock.now });
    await s.batches.sweep();
    const done = await s.batches.get(auth, batch.id);
    expect(done.status).toBe('cancelled');
    expect(await s.jobs.batchCounts(batch.id)).toEqual({ cancelled: 2 });
  });

  it('a batch left validating by a dead process: in_progress when its jobs were queued, else failed', async () => {
    const base = await createBatch(s, [chatLine('a')]);
    const queued = { ...base, id: 'batch_000000000000000000000001', status: 'validating' as const, requestCounts: { total: 0, completed: 0, failed: 0 } };
    await s.files.createBatch(queued);
    await s.jobs.enqueueMany([s.service.prepare(auth, 'chat', JSON.parse(chatLine('x')).body, { priority: 'low', batchId: queued.id, customId: 'x' })]);
    const empty = { ...queued, id: 'batch_000000000000000000000002' };
    await s.files.createBatch(empty);
    await s.batches.sweep();
    expect((await s.batches.get(auth, queued.id)).status).toBe('validating'); // its creator may still be at it
    s.clock.now += 10 * 60_000;
    await s.batches.sweep();
    const resumed = await s.batches.get(auth, queued.id);
    expect([resumed.status, resumed.requestCounts.total]).toEqual(['in_progress', 1]);
    const failed = await s.batches.get(auth, empty.id);
    expect([failed.status, failed.errors[0]?.code]).toEqual(['failed', 'internal_error']);
  });

  it('poke: a batch whose last job ended is finalized without waiting for the sweep', async () => {
    const batch = await createBatch(s, [chatLine('a')]);
    s.batches.start(); // one sweep now, then every minute (sweepMs)
    // That first sweep is over before the job ends: from here only the poke can finalize the batch.
    await (s.batches as unknown as { sweeper: { chain: Promise<void> } }).sweeper.chain;
    await succeed(s, (await claimAll(s)).get('a')!);
    expect((await s.batches.get(auth, batch.id)).status).toBe('in_progress');
    s.batches.poke(batch.id);
    await vi.waitFor(async () => expect((await s.batches.get(auth, batch.id)).status).toBe('completed'), { timeout: 10_000, interval: 5 });
  });

  it('expired files are deleted by the sweeper, and read as gone once expired', async () => {
    const id = await upload(s, [chatLine('a')]);
    s.clock.now += s.config.batch.fileTtlMs;
    expect(((await s.batches.getFile(auth, id).catch((e: unknown) => e)) as GatewayError).status).toBe(404);
    await s.batches.sweep();
    expect(await s.files.getFile(id, auth.tenantId)).toBeUndefined();
  });

  it('finished jobs are deleted by the sweeper once past jobs.retentionMs; unfinished ones are kept', async () => {
    const batch = await createBatch(s, [chatLine('a'), chatLine('b')]);
    const jobs = await claimAll(s);
    await succeed(s, jobs.get('a')!);
    await s.batches.sweep();
    s.clock.now += s.config.retentionMs + 1;
    await s.peer().sweep(); // a process whose file sweep is due
    expect(await s.jobs.get(jobs.get('a')!.id)).toBeUndefined();
    // b was still running; it ended only now (the batch's window had passed): kept.
    expect(await s.jobs.get(jobs.get('b')!.id)).toMatchObject({ status: 'cancelled', finishedAt: s.clock.now });
    expect((await s.batches.get(auth, batch.id)).status).toBe('expired');
  });
});
