/**
 * BatchService on the SQLite adapters: the input file's line checks (as OpenAI reports them), the
 * output and error files' exact lines, and the batch's life (counts, completion, cancel, expiry,
 * two processes, a finalization or validation cut short, expired files).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { AuthInfo } from '../auth/authenticator.js';
import { buildConfig } from '../config/loader.js';
import { type JobsConfig, jobsSchema } from '../config/jobs-schema.js';
import { GatewayError } from '../errors.js';
import { createLogger } from '../observability/logger.js';
import { ProviderRegistry } from '../providers/registry.js';
import { ModelCatalog } from '../routing/catalog.js';
import { type Database, openDatabase } from '../storage/sqlite/database.js';
import { SqliteFileStore } from '../storage/sqlite/files.js';
import { SqliteJobStore } from '../storage/sqlite/jobs.js';
import { BatchService, batchObject, fileObject, splitLines, validateLines } from './batches.js';
import { LocalJobEvents } from './events.js';
import { JobService } from './service.js';
import type { BatchRecord, JobRecord } from './types.js';
import { storedPriority } from './wire.js';

const DAY = 24 * 3_600_000;
const T0 = Date.UTC(2026, 0, 5, 12, 0, 0);

const auth: AuthInfo = {
  keyId: 'key_a',
  kind: 'api',
  tenantId: 'tenant_a',
  tenantName: 'A',
  tier: 'standard',
  allowedModels: null,
  userId: null,
  tenantPolicy: null,
  keyPolicy: null,
};
const other: AuthInfo = { ...auth, keyId: 'key_b', tenantId: 'tenant_b', tenantName: 'B' };

let catalog: ModelCatalog;
beforeAll(async () => {
  const config = buildConfig({});
  catalog = new ModelCatalog(config, await ProviderRegistry.create(config));
});

const chatLine = (customId: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    custom_id: customId,
    method: 'POST',
    url: '/v1/chat/completions',
    body: { model: 'sim-small', messages: [{ role: 'user', content: `hi ${customId}` }] },
    ...extra,
  });

interface Setup {
  db: Database;
  jobs: SqliteJobStore;
  files: SqliteFileStore;
  service: JobService;
  batches: BatchService;
  clock: { now: number };
  config: JobsConfig;
  /** Running jobs the service said were cancelled (onCancelled). */
  cancelled: string[];
  /** Another process on the same database. */
  peer(): BatchService;
}

function setup(batch: Partial<JobsConfig['batch']> = {}): Setup {
  const db = openDatabase(':memory:');
  const jobs = new SqliteJobStore(db);
  const files = new SqliteFileStore(db, { dir: mkdtempSync(join(tmpdir(), 'tollgate-batches-')) });
  const config = jobsSchema.parse({ batch });
  const clock = { now: T0 };
  const now = () => clock.now;
  const service = new JobService({ store: jobs, events: new LocalJobEvents(), config, catalog, now });
  const cancelled: string[] = [];
  const make = () =>
    new BatchService({ files, jobs, service, config, log: createLogger('silent'), now, sweepMs: 60_000, pokeDelayMs: 1, onCancelled: (id) => cancelled.push(id) });
  return { db, jobs, files, service, batches: make(), clock, config, cancelled, peer: make };
}

async function upload(s: Setup, lines: string[], who: AuthInfo = auth): Promise<string> {
  const file = await s.batches.uploadFile(who, { purpose: 'batch', filename: 'in.jsonl', content: Buffer.from(`${lines.join('\n')}\n`) });
  return file.id;
}

async function createBatch(s: Setup, lines: string[], endpoint: BatchRecord['endpoint'] = '/v1/chat/completions'): Promise<BatchRecord> {
  const inputFileId = await upload(s, lines);
  return s.batches.create(auth, { inputFileId, endpoint, completionWindow: '24h' });
}

/** Claims every queued job as worker `w`; returns them by custom_id. */
async function claimAll(s: Setup): Promise<Map<string, JobRecord>> {
  const claimed = await s.jobs.claim({ owner: 'w', limit: 1_000, leaseMs: 60_000, now: s.clock.now });
  return new Map(claimed.map((j) => [j.customId!, j]));
}

const answer = (customId: string) => ({ id: `chatcmpl-${customId}`, object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: `re ${customId}` } }] });

async function succeed(s: Setup, job: JobRecord): Promise<void> {
  expect(await s.jobs.complete(job.id, 'w', { result: answer(job.customId!), costPico: 1, promptTokens: 3, completionTokens: 4 }, s.clock.now)).toBe(true);
}

async function content(s: Setup, fileId: string | null): Promise<any[]> {
  expect(fileId).toMatch(/^file-[0-9a-f]{24}$/);
  const buf = await s.files.getContent(fileId!, auth.tenantId);
  const text = buf!.toString('utf8');
  expect(text.endsWith('\n')).toBe(true);
  return text.trimEnd().split('\n').map((l) => JSON.parse(l));
}

describe('the input file', () => {
  it('splits lines: CRLF, a BOM, blank lines skipped but counted', () => {
    expect(splitLines(Buffer.from('\ufeff{"a":1}\r\n\r\n  \n{"b":2}\n'))).toEqual([
      { line: 1, text: '{"a":1}' },
      { line: 4, text: '{"b":2}' },
    ]);
    expect(splitLines(Buffer.from(''))).toEqual([]);
  });

  it('reports every invalid line as OpenAI does (code, message, 1-based line, param), the body checked by JobService.prepare', async () => {
    const s = setup();
    const text = [
      chatLine('ok-1'), // 1
      '', // 2: blank, skipped
      '{"custom_id": "x", ', // 3
      '[1, 2]', // 4
      JSON.stringify({ method: 'POST', url: '/v1/chat/completions', body: {} }), // 5
      chatLine('ok-1'), // 6: duplicate
      chatLine('get', { method: 'GET' }), // 7
      chatLine('emb-url', { url: '/v1/embeddings' }), // 8
      JSON.stringify({ custom_id: 'no-body', method: 'POST', url: '/v1/chat/completions' }), // 9
      chatLine('no-model', { body: { model: 'nope', messages: [{ role: 'user', content: 'x' }] } }), // 10
      chatLine('no-messages', { body: { model: 'sim-small' } }), // 11
      chatLine('embed-model', { body: { model: 'sim-embed', messages: [{ role: 'user', content: 'x' }] } }), // 12
      chatLine('bad-role', { body: { model: 'sim-small', messages: [{ role: 'robot', content: 'x' }] } }), // 13
      chatLine('ok-2'), // 14
    ].join('\n');
    const { jobs, errors } = await validateLines(splitLines(Buffer.from(text)), '/v1/chat/completions', (body, customId) =>
      s.service.prepare(auth, 'chat', body, { priority: 'low', batchId: 'batch_1', customId }, 'body.'),
    );
    expect(errors).toEqual([
      { code: 'invalid_json_line', message: 'This line is not parseable as valid JSON.', line: 3, param: null },
      { code: 'invalid_json_line', message: 'This line is not a JSON object.', line: 4, param: null },
      { code: 'missing_field', message: "Missing required parameter: 'custom_id'.", line: 5, param: 'custom_id' },
      {
        code: 'duplicate_custom_id',
        message: "The custom_id 'ok-1' is a duplicate of line 1; each request's custom_id must be unique in the batch.",
        line: 6,
        param: 'custom_id',
      },
      { code: 'invalid_value', message: "Invalid value for 'method': only 'POST' is supported.", line: 7, param: 'method' },
      { code: 'url_mismatch', message: "The url '/v1/embeddings' does not match the batch's endpoint '/v1/chat/completions'.", line: 8, param: 'url' },
      { code: 'missing_field', message: "Missing required parameter: 'body'.", line: 9, param: 'body' },
      { code: 'model_not_found', message: "The model 'nope' does not exist or you do not have access to it.", line: 10, param: 'body.model' },
      { code: 'missing_field', message: "Missing required parameter: 'body.messages'.", line: 11, param: 'body.messages' },
      {
        code: 'invalid_value',
        message: "The model 'sim-embed' is an embedding model; use the /v1/embeddings endpoint.",
        line: 12,
        param: 'body.model',
      },
      expect.objectContaining({ code: 'invalid_value', line: 13, param: 'body.messages[0].role' }),
    ]);
    expect(jobs.map((j) => [j.customId, j.batchId, j.kind, j.model, j.priority])).toEqual([
      ['ok-1', 'batch_1', 'chat', 'sim-small', storedPriority(1, 'low')],
      ['ok-2', 'batch_1', 'chat', 'sim-small', storedPriority(1, 'low')],
    ]);
  });

  it('a file with an invalid line: the batch is failed with its errors, and nothing is queued', async () => {
    const s = setup();
    const batch = await createBatch(s, [chatLine('a'), chatLine('b', { url: '/v1/embeddings' }), chatLine('c')]);
    expect(batch.status).toBe('failed');
    expect(batch.failedAt).toBe(T0);
    const obj = batchObject(batch);
    expect(obj['errors']).toEqual({
      object: 'list',
      data: [{ code: 'url_mismatch', message: "The url '/v1/embeddings' does not match the batch's endpoint '/v1/chat/completions'.", param: 'url', line: 2 }],
    });
    expect(obj['failed_at']).toBe(T0 / 1000);
    expect(await s.jobs.batchCounts(batch.id)).toEqual({});
  });

  it('an empty file: failed, empty_file', async () => {
    const s = setup();
    const batch = await createBatch(s, []);
    expect(batch.status).toBe('failed');
    expect(batch.errors).toEqual([{ code: 'empty_file', message: 'The batch input file is empty.', line: null, param: null }]);
  });

  it('more lines than jobs.batch.maxRequests: 400 naming the limit, no batch', async () => {
    const s = setup({ maxRequests: 2 });
    const err = await createBatch(s, [chatLine('a'), chatLine('b'), chatLine('c')]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GatewayError);
    expect((err as GatewayError).status).toBe(400);
    expect((err as GatewayError).message).toBe('The input file has 3 requests; a batch may hold at most 2 (jobs.batch.maxRequests).');
    expect((await s.batches.list(auth, { limit: 10 })).data).toEqual([]);
  });

  it("an unknown file, or another tenant's: 404 naming input_file_id", async () => {
    const s = setup();
    const theirs = await upload(s, [chatLine('a')], other);
    for (const inputFileId of ['file-000000000000000000000000', theirs]) {
      const err = (await s.batches.create(auth, { inputFileId, endpoint: '/v1/chat/completions', completionWindow: '24h' }).catch((e: unknown) => e)) as GatewayError;
      expect([err.status, err.param]).toEqual([404, 'input_file_id']);
    }
  });

  it('uploads: purpose batch only (400 naming purpose), the size limit (413 naming it); the file object', async () => {
    const s = setup({ maxFileBytes: 10 });
    const bad = (await s.batches.uploadFile(auth, { purpose: 'fine-tune', filename: 'a', content: Buffer.from('x') }).catch((e: unknown) => e)) as GatewayError;
    expect([bad.status, bad.param]).toEqual([400, 'purpose']);
    const big = (await s.batches.uploadFile(auth, { purpose: 'batch', filename: 'a', content: Buffer.alloc(11) }).catch((e: unknown) => e)) as GatewayError;
    expect([big.status, big.message]).toEqual([413, 'The file is larger than the limit of 10 bytes (jobs.batch.maxFileBytes).']);
    const file = await s.batches.uploadFile(auth, { purpose: 'batch', filename: 'in.jsonl', content: Buffer.alloc(10) });
    expect(fileObject(file)).toEqual({
      id: file.id,
      object: 'file',
      bytes: 10,
      created_at: T0 / 1000,
      expires_at: (T0 + s.config.batch.fileTtlMs) / 1000,
      filename: 'in.jsonl',
      purpose: 'batch',
      status: 'processed',
      status_details: null,
    });
    expect(file.id).toMatch(/^file-[0-9a-f]{24}$/);
  });
});

describe('a batch on the job queue', () => {
  let s: Setup;
  beforeEach(() => {
    s = setup();
  });
  afterEach(async () => {
    await s.batches.stop();
  });

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
    await (s.batches as unknown as { chain: Promise<void> }).chain;
    await succeed(s, (await claimAll(s)).get('a')!);
    expect((await s.batches.get(auth, batch.id)).status).toBe('in_progress');
    s.batches.poke(batch.id);
    await vi.waitFor(async () => expect((await s.batches.get(auth, batch.id)).status).toBe('completed'), { timeout: 10_000, interval: 5 });
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
