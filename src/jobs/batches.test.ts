/**
 * BatchService on the SQLite adapters: a batch's life (counts, the output and error files' exact
 * lines, completion, cancel, expiry) and its tenant's walls.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { GatewayError } from '../errors.js';
// @ts-ignore TS6059: test helpers live outside tsconfig's rootDir (src); the import is type-checked all the same.
import { answer, auth, chatLine, claimAll, content, createBatch, DAY, loadCatalog, other, setupEach, succeed, T0 } from '../../test/helpers/batches.js';
import { batchObject, storedPriority } from './wire.js';

beforeAll(loadCatalog);

describe('a batch on the job queue', () => {
  const s = setupEach();

  it('queues every line as a low-priority job; counts follow the jobs; then the output and error files, in line order', async () => {
    const batch = await createBatch(s, [chatLine('a'), chatLine('b'), chatLine('c'), chatLine('d')]);
    expect(batch.status).toBe('in_progress');
    expect(batch.id).toMatch(/^batch_[0-9a-f]{24}$/);
    expect(batch.requestCounts).toEqual({ total: 4, completed: 0, failed: 0 });
    expect(batch.expiresAt).toBe(T0 + DAY);

    const claimed = await claimAll(s);
    expect([...claimed.keys()]).toEqual(['a', 'b', 'c', 'd']);
    for (const job of claimed.values()) {
      expect(job.priority).toBe(storedPriority(1, 'low'));
      expect(job.batchId).toBe(batch.id);
    }
    s.clock.now += 5_000;
    await succeed(s, claimed.get('c')!);
    await succeed(s, claimed.get('a')!);
    await s.jobs.fail(claimed.get('b')!.id, 'w', { error: { code: 'upstream_error', message: 'Upstream said no.', status: 502 } }, s.clock.now);
    await s.batches.sweep();
    let now = (await s.batches.get(auth, batch.id))!;
    expect([now.status, now.requestCounts]).toEqual(['in_progress', { total: 4, completed: 2, failed: 1 }]);

    s.clock.now += 1_000;
    await s.jobs.fail(claimed.get('d')!.id, 'w', { error: { code: 'invalid_value', message: "Invalid value for 'temperature'.", status: 400 } }, s.clock.now);
    await s.batches.sweep();
    now = await s.batches.get(auth, batch.id);
    expect(now.status).toBe('completed');
    expect(now.requestCounts).toEqual({ total: 4, completed: 2, failed: 2 });
    expect([now.finalizingAt, now.completedAt]).toEqual([s.clock.now, s.clock.now]);

    const a = claimed.get('a')!;
    expect(await content(s, now.outputFileId)).toEqual([
      { id: `batch_req_${a.id}`, custom_id: 'a', response: { status_code: 200, request_id: a.id, body: answer('a') }, error: null },
      { id: `batch_req_${claimed.get('c')!.id}`, custom_id: 'c', response: { status_code: 200, request_id: claimed.get('c')!.id, body: answer('c') }, error: null },
    ]);
    const b = claimed.get('b')!;
    const d = claimed.get('d')!;
    expect(await content(s, now.errorFileId)).toEqual([
      {
        id: `batch_req_${b.id}`,
        custom_id: 'b',
        response: { status_code: 502, request_id: b.id, body: { error: { message: 'Upstream said no.', type: 'server_error', param: null, code: 'upstream_error' } } },
        error: null,
      },
      {
        id: `batch_req_${d.id}`,
        custom_id: 'd',
        response: {
          status_code: 400,
          request_id: d.id,
          body: { error: { message: "Invalid value for 'temperature'.", type: 'invalid_request_error', param: null, code: 'invalid_value' } },
        },
        error: null,
      },
    ]);
    const out = await s.batches.getFile(auth, now.outputFileId!);
    expect([out.purpose, out.filename, out.expiresAt]).toEqual(['batch_output', `${batch.id}_output.jsonl`, s.clock.now + s.config.batch.fileTtlMs]);

    // OpenAI's batch object, every field.
    expect(batchObject(now)).toEqual({
      id: batch.id,
      object: 'batch',
      endpoint: '/v1/chat/completions',
      errors: null,
      input_file_id: batch.inputFileId,
      completion_window: '24h',
      status: 'completed',
      output_file_id: now.outputFileId,
      error_file_id: now.errorFileId,
      created_at: T0 / 1000,
      in_progress_at: T0 / 1000,
      expires_at: (T0 + DAY) / 1000,
      finalizing_at: s.clock.now / 1000,
      completed_at: s.clock.now / 1000,
      failed_at: null,
      expired_at: null,
      cancelling_at: null,
      cancelled_at: null,
      request_counts: { total: 4, completed: 2, failed: 2 },
      metadata: {},
    });
  });

  it('every job succeeded: no error file (error_file_id null)', async () => {
    const batch = await createBatch(s, [chatLine('a')]);
    await succeed(s, (await claimAll(s)).get('a')!);
    await s.batches.sweep();
    const done = await s.batches.get(auth, batch.id);
    expect(done.status).toBe('completed');
    expect(done.errorFileId).toBeNull();
    expect(await content(s, done.outputFileId)).toHaveLength(1);
  });

  it('an embeddings batch becomes embeddings jobs', async () => {
    const line = JSON.stringify({ custom_id: 'e', method: 'POST', url: '/v1/embeddings', body: { model: 'sim-embed', input: 'hello' } });
    const batch = await createBatch(s, [line], '/v1/embeddings');
    expect(batch.status).toBe('in_progress');
    const [job] = await s.jobs.batchJobs(batch.id);
    expect([job!.kind, job!.model, job!.customId]).toEqual(['embeddings', 'sim-embed', 'e']);
  });

  it('cancel: cancelling at once (queued and running jobs cancelled), then cancelled with what had finished', async () => {
    const batch = await createBatch(s, [chatLine('a'), chatLine('b'), chatLine('c')]);
    const claimed = await s.jobs.claim({ owner: 'w', limit: 2, leaseMs: 60_000, now: s.clock.now });
    await succeed(s, claimed[0]!);
    s.clock.now += 1_000;
    const cancelling = await s.batches.cancel(auth, batch.id);
    expect([cancelling.status, cancelling.cancellingAt]).toEqual(['cancelling', s.clock.now]);
    expect(await s.jobs.batchCounts(batch.id)).toEqual({ succeeded: 1, cancelled: 2 });
    expect(s.cancelled).toEqual([claimed[1]!.id]); // its process is told to stop it
    // The running job's worker can no longer complete it.
    expect(await s.jobs.complete(claimed[1]!.id, 'w', { result: {}, costPico: 0, promptTokens: 0, completionTokens: 0 }, s.clock.now)).toBe(false);
    expect((await s.batches.cancel(auth, batch.id)).status).toBe('cancelling'); // again: unchanged

    await s.batches.sweep();
    const done = await s.batches.get(auth, batch.id);
    expect([done.status, done.cancelledAt, done.completedAt]).toEqual(['cancelled', s.clock.now, null]);
    expect(done.requestCounts).toEqual({ total: 3, completed: 1, failed: 2 });
    expect((await content(s, done.outputFileId)).map((l) => l.custom_id)).toEqual(['a']);
    const errors = await content(s, done.errorFileId);
    expect(errors.map((l) => [l.custom_id, l.response, l.error])).toEqual([
      ['b', null, { code: 'batch_cancelled', message: 'This request was not executed because the batch was cancelled.' }],
      ['c', null, { code: 'batch_cancelled', message: 'This request was not executed because the batch was cancelled.' }],
    ]);
    // A batch that has ended cannot be cancelled.
    const single = await createBatch(s, [chatLine('z')]);
    await succeed(s, (await claimAll(s)).get('z')!);
    await s.batches.sweep();
    const err = (await s.batches.cancel(auth, single.id).catch((e: unknown) => e)) as GatewayError;
    expect([err.status, err.code]).toEqual([409, 'conflict']);
  });

  it('expiry: past its 24 h the remaining jobs are cancelled, what finished is written, the batch is expired', async () => {
    const batch = await createBatch(s, [chatLine('a'), chatLine('b'), chatLine('c')]);
    const [first] = await s.jobs.claim({ owner: 'w', limit: 1, leaseMs: 60_000, now: s.clock.now });
    await succeed(s, first!);
    await s.jobs.claim({ owner: 'w', limit: 1, leaseMs: DAY * 2, now: s.clock.now }); // b: still running
    s.clock.now = T0 + DAY - 1;
    await s.batches.sweep();
    expect((await s.batches.get(auth, batch.id)).status).toBe('in_progress');
    s.clock.now = T0 + DAY;
    await s.batches.sweep();
    const done = await s.batches.get(auth, batch.id);
    expect([done.status, done.expiredAt, done.completedAt, done.cancelledAt]).toEqual(['expired', T0 + DAY, null, null]);
    expect(await s.jobs.batchCounts(batch.id)).toEqual({ succeeded: 1, cancelled: 2 });
    expect((await content(s, done.outputFileId)).map((l) => l.custom_id)).toEqual(['a']);
    expect((await content(s, done.errorFileId)).map((l) => [l.custom_id, l.response, l.error.code])).toEqual([
      ['b', null, 'batch_expired'],
      ['c', null, 'batch_expired'],
    ]);
    expect(batchObject(done)['expired_at']).toBe((T0 + DAY) / 1000);
  });

  it('a job that passed its deadline reads as batch_expired in the error file', async () => {
    const batch = await createBatch(s, [chatLine('a')]);
    const [job] = await s.jobs.batchJobs(batch.id);
    expect(job!.deadlineAt).toBe(T0 + DAY); // the jobs' backstop: the end of the window
    await s.jobs.expire(T0 + DAY);
    s.clock.now = T0 + DAY - 1;
    await s.batches.sweep();
    const done = await s.batches.get(auth, batch.id);
    expect(done.status).toBe('completed');
    expect((await content(s, done.errorFileId))[0].error.code).toBe('batch_expired');
  });

  it("tenants: another tenant's key sees neither the batch nor its files", async () => {
    const batch = await createBatch(s, [chatLine('a')]);
    await succeed(s, (await claimAll(s)).get('a')!);
    await s.batches.sweep();
    const done = await s.batches.get(auth, batch.id);
    for (const call of [
      () => s.batches.get(other, batch.id),
      () => s.batches.cancel(other, batch.id),
      () => s.batches.getFile(other, done.outputFileId!),
      () => s.batches.fileContent(other, batch.inputFileId),
      () => s.batches.deleteFile(other, batch.inputFileId),
    ]) {
      expect(((await call().catch((e: unknown) => e)) as GatewayError).status).toBe(404);
    }
    expect((await s.batches.list(other, { limit: 10 })).data).toEqual([]);
  });

});
