/**
 * The Batch API through a real gateway (simulator models, the job worker running), driven by the
 * official `openai` SDK as a user would: upload a JSONL file, create a batch, poll it, read the
 * output file. Also the refusals (a bad line, too many lines, file size and purpose), cancel, and
 * tenant isolation.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI, { toFile } from 'openai';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { RawConfig } from '../../src/config/schema.js';
import type { SimulatedProvider } from '../../src/providers/simulated/provider.js';
import { FAST_MODELS, type TestGateway, auth, postJson, startGateway } from '../helpers/gateway.js';

type ApiError = InstanceType<typeof OpenAI.APIError>;

const MAX_FILE = 256 * 1024;
const JSON_LIMIT = 32 * 1024;
const MAX_REQUESTS = 50;

const chat = (customId: string, model = 'sim-small', extra: Record<string, unknown> = {}) => ({
  custom_id: customId,
  method: 'POST',
  url: '/v1/chat/completions',
  body: { model, messages: [{ role: 'user', content: `Question ${customId}: what is a tollgate?` }] },
  ...extra,
});
const jsonl = (lines: unknown[]) => Buffer.from(`${lines.map((l) => JSON.stringify(l)).join('\n')}\n`);

/** Polls the batch until it is in one of `statuses` (the timeout only bounds a failure). */
async function waitFor(client: OpenAI, id: string, statuses: string[], timeoutMs = 20_000): Promise<OpenAI.Batch> {
  let batch!: OpenAI.Batch;
  await vi.waitFor(
    async () => {
      batch = await client.batches.retrieve(id);
      if (!statuses.includes(batch.status)) throw new Error(`batch ${id} still ${batch.status} (wanted ${statuses.join(' or ')})`);
    },
    { timeout: timeoutMs, interval: 10 },
  );
  return batch;
}

const waitUntil = (check: () => void | Promise<void>) => vi.waitFor(check, { timeout: 10_000, interval: 5 });
/** The in-process simulator behind a gateway's `sim` provider (script outcomes, read stats). */
const simOf = (gw: TestGateway) => (gw.gateway.providers.get('sim') as SimulatedProvider).engine;
const hang = (n: number) => Array.from({ length: n }, () => ({ kind: 'hang' as const }));

async function lines(client: OpenAI, fileId: string): Promise<any[]> {
  const text = await (await client.files.content(fileId)).text();
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l));
}

const SIM: RawConfig = {
  providers: {
    sim: {
      kind: 'simulated',
      models: FAST_MODELS,
    },
  },
  models: {
    'sim-small': { deployments: [{ provider: 'sim' }] },
    'sim-embed': { type: 'embedding', deployments: [{ provider: 'sim' }] },
  },
};

describe('the Batch API with the openai SDK', () => {
  let gw: TestGateway;
  let client: OpenAI;
  let otherClient: OpenAI;

  beforeAll(async () => {
    gw = await startGateway({
      ...SIM,
      server: { bodyLimitBytes: JSON_LIMIT },
      jobs: { concurrency: 4, pollMs: 50, batch: { maxFileBytes: MAX_FILE, maxRequests: MAX_REQUESTS } },
    });
    client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: gw.apiKey, maxRetries: 0 });

    // A second tenant with its own API key.
    const admin = auth(gw.adminKey);
    const tenant = await postJson(`${gw.url}/admin/v1/tenants`, { name: 'Other Co' }, admin);
    expect(tenant.status).toBe(201);
    const key = await postJson(`${gw.url}/admin/v1/keys`, { tenant_id: tenant.body.id, name: 'other' }, admin);
    expect(key.status).toBe(201);
    otherClient = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: key.body.key, maxRetries: 0 });
  });
  afterAll(async () => {
    await gw?.close();
  });

  it('runs a chat batch: every custom_id answered with a chat.completion, in the output file', async () => {
    const ids = ['q1', 'q2', 'q3', 'q4', 'q5', 'q6'];
    const file = await client.files.create({ file: await toFile(jsonl(ids.map((id) => chat(id))), 'batch.jsonl'), purpose: 'batch' });
    expect(file).toMatchObject({ object: 'file', purpose: 'batch', filename: 'batch.jsonl', status: 'processed' });
    expect(file.id).toMatch(/^file-[0-9a-f]{24}$/);
    expect(file.bytes).toBe(jsonl(ids.map((id) => chat(id))).length);
    expect(await (await client.files.content(file.id)).text()).toBe(jsonl(ids.map((id) => chat(id))).toString());

    const created = await client.batches.create({
      input_file_id: file.id,
      endpoint: '/v1/chat/completions',
      completion_window: '24h',
      metadata: { run: 'nightly' },
    });
    expect(created).toMatchObject({ object: 'batch', status: 'in_progress', input_file_id: file.id, completion_window: '24h', metadata: { run: 'nightly' } });
    expect(created.request_counts).toEqual({ total: 6, completed: 0, failed: 0 });
    expect(created.expires_at).toBe(created.created_at + 24 * 3600);

    const done = await waitFor(client, created.id, ['completed', 'failed', 'cancelled', 'expired']);
    expect(done.status).toBe('completed');
    expect(done.request_counts).toEqual({ total: 6, completed: 6, failed: 0 });
    expect(done.error_file_id).toBeNull();
    expect(done.errors).toBeNull();
    for (const at of [done.in_progress_at, done.finalizing_at, done.completed_at]) expect(at).toBeGreaterThanOrEqual(done.created_at);

    const out = await lines(client, done.output_file_id!);
    expect(out.map((l) => l.custom_id)).toEqual(ids); // in input order
    for (const line of out) {
      expect(line.id).toMatch(/^batch_req_job_[0-9a-f]{24}$/);
      expect(line.error).toBeNull();
      expect(line.response.status_code).toBe(200);
      expect(line.response.request_id).toMatch(/^job_/);
      expect(line.response.body.object).toBe('chat.completion');
      expect(line.response.body.choices[0].message.content.length).toBeGreaterThan(0);
    }
    const output = await client.files.retrieve(done.output_file_id!);
    expect(output).toMatchObject({ purpose: 'batch_output', filename: `${done.id}_output.jsonl` });

    const listed: string[] = [];
    for await (const b of client.batches.list({ limit: 1 })) listed.push(b.id);
    expect(listed).toContain(done.id);
    const files: string[] = [];
    for await (const f of client.files.list()) files.push(f.id);
    expect(files).toEqual(expect.arrayContaining([file.id, done.output_file_id]));
  });

  it('runs an embeddings batch', async () => {
    const input = ['alpha', 'beta', 'gamma'].map((word) => ({ custom_id: word, method: 'POST', url: '/v1/embeddings', body: { model: 'sim-embed', input: word } }));
    const file = await client.files.create({ file: await toFile(jsonl(input), 'embed.jsonl'), purpose: 'batch' });
    const created = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/embeddings', completion_window: '24h' });
    const done = await waitFor(client, created.id, ['completed', 'failed']);
    expect(done.request_counts).toEqual({ total: 3, completed: 3, failed: 0 });
    const out = await lines(client, done.output_file_id!);
    expect(out.map((l) => l.custom_id)).toEqual(['alpha', 'beta', 'gamma']);
    for (const line of out) {
      expect(line.response.body.object).toBe('list');
      expect(line.response.body.data[0].embedding).toHaveLength(64);
    }
  });

  it('a file with invalid lines: the batch is failed, naming each line and field, and nothing runs', async () => {
    const input = [chat('good'), chat('bad-model', 'no-such-model'), chat('wrong-url', 'sim-small', { url: '/v1/embeddings' }), chat('good')];
    const file = await client.files.create({ file: await toFile(jsonl(input), 'bad.jsonl'), purpose: 'batch' });
    const batch = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    expect(batch.status).toBe('failed');
    expect(batch.failed_at).toBeGreaterThan(0);
    expect(batch.errors?.object).toBe('list');
    expect(batch.errors?.data?.map((e) => [e.line, e.code, e.param])).toEqual([
      [2, 'model_not_found', 'body.model'],
      [3, 'url_mismatch', 'url'],
      [4, 'duplicate_custom_id', 'custom_id'],
    ]);
    expect(batch.errors?.data?.[0]?.message).toBe("The model 'no-such-model' does not exist or you do not have access to it.");
    expect((await client.batches.retrieve(batch.id)).status).toBe('failed');
  });

  it('refuses what it cannot take: too many lines, an unknown file, a wrong endpoint or window', async () => {
    const many = Array.from({ length: MAX_REQUESTS + 1 }, (_, i) => chat(`r${i}`));
    const file = await client.files.create({ file: await toFile(jsonl(many), 'many.jsonl'), purpose: 'batch' });
    const tooMany = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' }).catch((e: unknown) => e);
    expect(tooMany).toBeInstanceOf(OpenAI.BadRequestError);
    expect((tooMany as ApiError).message).toContain(`at most ${MAX_REQUESTS} (jobs.batch.maxRequests)`);

    const unknown = await client.batches
      .create({ input_file_id: 'file-000000000000000000000000', endpoint: '/v1/chat/completions', completion_window: '24h' })
      .catch((e: unknown) => e);
    expect(unknown).toBeInstanceOf(OpenAI.NotFoundError);
    expect((unknown as ApiError).param).toBe('input_file_id');

    const endpoint = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/completions', completion_window: '24h' }).catch((e: unknown) => e);
    expect((endpoint as ApiError).param).toBe('endpoint');
    const window = await client.batches
      .create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '48h' as '24h' })
      .catch((e: unknown) => e);
    expect((window as ApiError).param).toBe('completion_window');
  });

  it('uploads: purpose must be batch; the size limit is jobs.batch.maxFileBytes, for this route only', async () => {
    const purpose = await client.files.create({ file: await toFile(Buffer.from('{}\n'), 'a.jsonl'), purpose: 'fine-tune' }).catch((e: unknown) => e);
    expect(purpose).toBeInstanceOf(OpenAI.BadRequestError);
    expect((purpose as ApiError).param).toBe('purpose');

    // Larger than the JSON body limit of every other route, within the file limit: accepted.
    const big = await client.files.create({ file: await toFile(Buffer.alloc(100 * 1024, 0x61), 'big.jsonl'), purpose: 'batch' });
    expect(big.bytes).toBe(100 * 1024);
    // Over the file limit: 413 naming it.
    const tooBig = await client.files.create({ file: await toFile(Buffer.alloc(MAX_FILE + 1, 0x61), 'huge.jsonl'), purpose: 'batch' }).catch((e: unknown) => e);
    expect((tooBig as ApiError).status).toBe(413);
    expect((tooBig as ApiError).message).toContain(`limit of ${MAX_FILE} bytes (jobs.batch.maxFileBytes)`);
    // The JSON routes keep server.bodyLimitBytes.
    const long = { model: 'sim-small', messages: [{ role: 'user', content: 'a'.repeat(60 * 1024) }] };
    const json = await postJson(`${gw.url}/v1/chat/completions`, long, auth(gw.apiKey));
    expect(json.status).toBe(413);
    expect(json.body.error.message).toContain(`limit of ${JSON_LIMIT} bytes`);

    const missing = await fetch(`${gw.url}/v1/files`, { method: 'POST', headers: auth(gw.apiKey), body: formWithout('file') });
    expect([missing.status, (await missing.json()).error.param]).toEqual([400, 'file']);
    const notMultipart = await postJson(`${gw.url}/v1/files`, { purpose: 'batch' }, auth(gw.apiKey));
    expect(notMultipart.status).toBe(415);

    const deleted = await client.files.delete(big.id);
    expect(deleted).toEqual({ id: big.id, object: 'file', deleted: true });
    await expect(client.files.retrieve(big.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });

  it('cancel: cancelling at once, then cancelled; the requests that never ran are in the error file', async () => {
    const sim = simOf(gw);
    const aborted = sim.stats().aborted;
    // The first four runs (jobs.concurrency) hang upstream: when the cancel comes, four jobs are
    // running and eight queued, and none can have finished.
    sim.script(hang(4));
    const ids = Array.from({ length: 12 }, (_, i) => `slow-${i}`);
    const file = await client.files.create({ file: await toFile(jsonl(ids.map((id) => chat(id))), 'slow.jsonl'), purpose: 'batch' });
    const batch = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    await waitUntil(() => {
      expect(sim.scriptedLeft).toBe(0);
      expect(sim.stats().inFlight).toBe(4);
    });
    const cancelling = await client.batches.cancel(batch.id);
    expect(cancelling.status).toBe('cancelling');
    expect(cancelling.cancelling_at).toBeGreaterThan(0);

    const done = await waitFor(client, batch.id, ['cancelled']);
    expect(done.cancelled_at).toBeGreaterThanOrEqual(done.cancelling_at!);
    expect(done.request_counts).toEqual({ total: 12, completed: 0, failed: 12 });
    expect(sim.stats().aborted).toBe(aborted + 4); // the running ones were stopped upstream
    const errors = await lines(client, done.error_file_id!);
    expect(errors.map((l) => l.custom_id)).toEqual(ids); // every request, in input order
    for (const line of errors) {
      expect(line.response).toBeNull();
      expect(line.error.code).toBe('batch_cancelled');
    }
    expect((await client.batches.cancel(batch.id)).status).toBe('cancelled');
  });

  it("tenants: another tenant's key gets 404 for the file and the batch, and lists neither", async () => {
    const file = await client.files.create({ file: await toFile(jsonl([chat('mine')]), 'mine.jsonl'), purpose: 'batch' });
    const batch = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    const done = await waitFor(client, batch.id, ['completed']);

    for (const call of [
      () => otherClient.files.retrieve(file.id),
      () => otherClient.files.content(file.id),
      () => otherClient.files.retrieve(done.output_file_id!),
      () => otherClient.files.delete(file.id),
      () => otherClient.batches.retrieve(batch.id),
      () => otherClient.batches.cancel(batch.id),
      () => otherClient.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' }),
    ]) {
      await expect(call()).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    }
    expect((await otherClient.files.list()).data).toEqual([]);
    expect((await otherClient.batches.list()).data).toEqual([]);
    // Still the owner's.
    expect((await client.files.retrieve(file.id)).id).toBe(file.id);
  });

  it('an admin key is refused', async () => {
    const admin = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: gw.adminKey, maxRetries: 0 });
    await expect(admin.batches.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    await expect(admin.files.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
  });
});

describe('a batch across a restart', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'tollgate-batch-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('a gateway stopped mid-batch: the next one on the same store finishes it, from the store alone', async () => {
    const raw: RawConfig = { ...SIM, storage: { kind: 'embedded', dir }, jobs: { concurrency: 2, pollMs: 50 }, server: { shutdownGraceMs: 200 } };
    const first = await startGateway(raw);
    const apiKey = first.apiKey;
    let client = new OpenAI({ baseURL: `${first.url}/v1`, apiKey, maxRetries: 0 });
    const ids = Array.from({ length: 6 }, (_, i) => `r${i}`);
    // The first gateway's two runs (jobs.concurrency 2) hang upstream: it stops mid-batch, with
    // jobs running and jobs queued, none finished.
    const sim = simOf(first);
    sim.script(hang(2));
    const file = await client.files.create({ file: await toFile(jsonl(ids.map((id) => chat(id))), 'slow.jsonl'), purpose: 'batch' });
    const batch = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    await waitUntil(() => expect(sim.stats().inFlight).toBe(2));
    expect((await client.batches.retrieve(batch.id)).request_counts).toEqual({ total: 6, completed: 0, failed: 0 });
    await first.gateway.close(); // not first.close(): that would delete the folder

    const second = await startGateway({ ...raw, auth: { bootstrap: false } });
    try {
      client = new OpenAI({ baseURL: `${second.url}/v1`, apiKey, maxRetries: 0 });
      const done = await waitFor(client, batch.id, ['completed', 'failed', 'cancelled', 'expired'], 20_000);
      expect(done.status).toBe('completed');
      expect(done.request_counts).toEqual({ total: 6, completed: 6, failed: 0 });
      expect((await lines(client, done.output_file_id!)).map((l) => [l.custom_id, l.response.body.object])).toEqual(
        ids.map((id) => [id, 'chat.completion']),
      );
    } finally {
      await second.gateway.close();
    }
  });
});

/** A multipart body with `purpose` and `file`, less one of them. */
function formWithout(field: 'purpose' | 'file'): FormData {
  const form = new FormData();
  if (field !== 'purpose') form.append('purpose', 'batch');
  if (field !== 'file') form.append('file', new Blob(['{}\n']), 'a.jsonl');
  return form;
}
