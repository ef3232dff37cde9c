/**
 * A Batch API on SQLite in memory for the tests of src/jobs/batch*.test.ts: a BatchService and
 * its JobService on one database with a clock the test moves, a second process on the same
 * database (`peer`), and the steps of a batch's life (upload, create, claim, succeed, read a
 * result file).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect } from 'vitest';
import type { AuthInfo } from '../../src/auth/authenticator.js';
import { buildConfig } from '../../src/config/loader.js';
import { type JobsConfig, jobsSchema } from '../../src/config/jobs-schema.js';
import { BatchService } from '../../src/jobs/batches.js';
import { LocalJobEvents } from '../../src/jobs/events.js';
import { JobService } from '../../src/jobs/service.js';
import type { BatchRecord, JobRecord } from '../../src/jobs/types.js';
import { createLogger } from '../../src/observability/logger.js';
import { ProviderRegistry } from '../../src/providers/registry.js';
import { ModelCatalog } from '../../src/routing/catalog.js';
import { type Database, openDatabase } from '../../src/storage/sqlite/database.js';
import { SqliteFileStore } from '../../src/storage/sqlite/files.js';
import { SqliteJobStore } from '../../src/storage/sqlite/jobs.js';

export const DAY = 24 * 3_600_000;
export const T0 = Date.UTC(2026, 0, 5, 12, 0, 0);

export const auth: AuthInfo = {
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
export const other: AuthInfo = { ...auth, keyId: 'key_b', tenantId: 'tenant_b', tenantName: 'B' };

let catalog: ModelCatalog | undefined;

/** Builds the sim models' catalog that `setup` uses: `beforeAll(loadCatalog)` in each test file. */
export async function loadCatalog(): Promise<void> {
  const config = buildConfig({});
  catalog = new ModelCatalog(config, await ProviderRegistry.create(config));
}

export const chatLine = (customId: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    custom_id: customId,
    method: 'POST',
    url: '/v1/chat/completions',
    body: { model: 'sim-small', messages: [{ role: 'user', content: `hi ${customId}` }] },
    ...extra,
  });

export interface Setup {
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

export function setup(batch: Partial<JobsConfig['batch']> = {}): Setup {
  const db = openDatabase(':memory:');
  const jobs = new SqliteJobStore(db);
  const files = new SqliteFileStore(db, { dir: mkdtempSync(join(tmpdir(), 'tollgate-batches-')) });
  const config = jobsSchema.parse({ batch });
  const clock = { now: T0 };
  const now = () => clock.now;
  if (!catalog) throw new Error('call loadCatalog first (beforeAll)');
  const service = new JobService({ store: jobs, events: new LocalJobEvents(), config, catalog, now });
  const cancelled: string[] = [];
  const make = () =>
    new BatchService({ files, jobs, service, config, log: createLogger('silent'), now, sweepMs: 60_000, pokeDelayMs: 1, onCancelled: (id) => cancelled.push(id) });
  return { db, jobs, files, service, batches: make(), clock, config, cancelled, peer: make };
}

/**
 * A fresh Setup for each test of the suite that calls it (the same object, refilled before each
 * test), its sweeper stopped after the test.
 */
export function setupEach(): Setup {
  const s = {} as Setup;
  beforeEach(() => {
    Object.assign(s, setup());
  });
  afterEach(async () => {
    await s.batches.stop();
  });
  return s;
}

export async function upload(s: Setup, lines: string[], who: AuthInfo = auth): Promise<string> {
  const file = await s.batches.uploadFile(who, { purpose: 'batch', filename: 'in.jsonl', content: Buffer.from(`${lines.join('\n')}\n`) });
  return file.id;
}

export async function createBatch(s: Setup, lines: string[], endpoint: BatchRecord['endpoint'] = '/v1/chat/completions'): Promise<BatchRecord> {
  const inputFileId = await upload(s, lines);
  return s.batches.create(auth, { inputFileId, endpoint, completionWindow: '24h' });
}

/** Claims every queued job as worker `w`; returns them by custom_id. */
export async function claimAll(s: Setup): Promise<Map<string, JobRecord>> {
  const claimed = await s.jobs.claim({ owner: 'w', limit: 1_000, leaseMs: 60_000, now: s.clock.now });
  return new Map(claimed.map((j) => [j.customId!, j]));
}

export const answer = (customId: string) => ({ id: `chatcmpl-${customId}`, object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: `re ${customId}` } }] });

export async function succeed(s: Setup, job: JobRecord): Promise<void> {
  expect(await s.jobs.complete(job.id, 'w', { result: answer(job.customId!), costPico: 1, promptTokens: 3, completionTokens: 4 }, s.clock.now)).toBe(true);
}

export async function content(s: Setup, fileId: string | null): Promise<any[]> {
  expect(fileId).toMatch(/^file-[0-9a-f]{24}$/);
  const buf = await s.files.getContent(fileId!, auth.tenantId);
  const text = buf!.toString('utf8');
  expect(text.endsWith('\n')).toBe(true);
  return text.trimEnd().split('\n').map((l) => JSON.parse(l));
}
