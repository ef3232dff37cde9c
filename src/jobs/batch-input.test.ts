/**
 * A batch's input file on the SQLite adapters: the lines' checks (as OpenAI reports them), a
 * file with invalid lines or too many, unknown files, and uploads.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { GatewayError } from '../errors.js';
// @ts-ignore TS6059: test helpers live outside tsconfig's rootDir (src); the import is type-checked all the same.
import { auth, chatLine, createBatch, loadCatalog, other, setup, T0, upload } from '../../test/helpers/batches.js';
import { splitLines, validateLines } from './batch-input.js';
import { batchObject, fileObject, storedPriority } from './wire.js';

beforeAll(loadCatalog);

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
