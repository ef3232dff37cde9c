/**
 * Behaviour every `StorageUsageStore` adapter must have (src/metering/storage-quotas.ts): the
 * counts and bytes of what a tenant stores follow every insert and delete of files, jobs and
 * feedback, whichever method of the stores makes it (the database keeps them), and never count a
 * row twice (idempotent enqueue, a feedback verdict updated). An adapter's test file calls
 * `runStorageUsageContract(name, factory)`; `factory` returns the usage store and the stores of
 * the same (empty) database.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FileRecord, FileStore, JobStore } from '../../src/jobs/types.js';
import type { StorageUsageStore } from '../../src/metering/storage-quotas.js';
import type { FeedbackStore } from '../../src/routing/types.js';
import { newJob } from './job-store.contract.js';

const T0 = Date.UTC(2025, 0, 1);

export interface StorageUsageUnderTest {
  usage: StorageUsageStore;
  files: FileStore;
  jobs: JobStore;
  feedback: FeedbackStore;
  close(): Promise<void>;
}

let counter = 0;
const fileId = () => `file-${(++counter).toString(16).padStart(8, '0')}${'0'.repeat(16)}`;

function file(tenantId: string, bytes: number, expiresAt: number | null = null): FileRecord {
  return { id: fileId(), tenantId, purpose: 'batch', filename: 'a.jsonl', bytes, createdAt: T0, expiresAt };
}

const bodyBytes = (body: unknown) => Buffer.byteLength(JSON.stringify(body));

export function runStorageUsageContract(name: string, factory: () => Promise<StorageUsageUnderTest>): void {
  describe(`StorageUsageStore contract: ${name}`, () => {
    let s: StorageUsageUnderTest;
    beforeEach(async () => {
      s = await factory();
    });
    afterEach(async () => {
      await s.close();
    });

    it('is all zero for a tenant that stores nothing', async () => {
      expect(await s.usage.usage('ten_nobody')).toEqual({ files: 0, fileBytes: 0, jobs: 0, jobBytes: 0, feedback: 0 });
    });

    it('counts files and their bytes per tenant, through upload, delete and expiry', async () => {
      const a1 = file('ten_a', 100);
      const a2 = file('ten_a', 2_500, T0 + 10);
      const b1 = file('ten_b', 7);
      await s.files.putFile(a1, Buffer.alloc(100));
      await s.files.putFile(a2, Buffer.alloc(2_500));
      await s.files.putFile(b1, Buffer.alloc(7));
      expect(await s.usage.usage('ten_a')).toMatchObject({ files: 2, fileBytes: 2_600 });
      expect(await s.usage.usage('ten_b')).toMatchObject({ files: 1, fileBytes: 7 });
      await expect(s.files.putFile(a1, Buffer.alloc(100))).rejects.toThrow(); // refused: nothing counted
      expect(await s.files.deleteFile(a1.id, 'ten_b')).toBe(false);
      expect(await s.files.deleteFile(a1.id, 'ten_a')).toBe(true);
      expect(await s.usage.usage('ten_a')).toMatchObject({ files: 1, fileBytes: 2_500 });
      expect(await s.files.deleteExpiredFiles(T0 + 10)).toBe(1);
      expect(await s.usage.usage('ten_a')).toMatchObject({ files: 0, fileBytes: 0 });
      expect(await s.usage.usage('ten_b')).toMatchObject({ files: 1, fileBytes: 7 });
    });

    it('counts jobs and the bytes of their request bodies, once per job, until retention deletes them', async () => {
      const big = newJob({ tenantId: 'ten_a', body: { model: 'sim-small', messages: [{ role: 'user', content: 'é'.repeat(1_000) }] } });
      const keyed = newJob({ tenantId: 'ten_a', idempotencyKey: 'k1' });
      await s.jobs.enqueue(big);
      await s.jobs.enqueue(keyed);
      expect((await s.jobs.enqueue(newJob({ tenantId: 'ten_a', idempotencyKey: 'k1' }))).created).toBe(false); // the same job
      const batch = Array.from({ length: 30 }, (_, i) => newJob({ tenantId: 'ten_b', batchId: 'batch_u', customId: String(i) }));
      await s.jobs.enqueueMany(batch);
      expect(await s.usage.usage('ten_a')).toMatchObject({ jobs: 2, jobBytes: bodyBytes(big.body) + bodyBytes(keyed.body) });
      expect(await s.usage.usage('ten_b')).toMatchObject({ jobs: 30, jobBytes: batch.reduce((n, j) => n + bodyBytes(j.body), 0) });

      await s.jobs.cancelBatch('batch_u', T0 + 1); // a status change stores nothing more
      expect((await s.usage.usage('ten_b')).jobs).toBe(30);
      expect(await s.jobs.deleteFinished(T0 + 2, 100)).toBe(30);
      expect(await s.usage.usage('ten_b')).toMatchObject({ jobs: 0, jobBytes: 0 });
      expect((await s.usage.usage('ten_a')).jobs).toBe(2);
    });

    it('counts one feedback row per request id: a changed verdict adds nothing', async () => {
      const put = (tenantId: string, requestId: string, at: number) => s.feedback.put({ tenantId, requestId, good: at % 2 === 0, comment: '', at });
      await put('ten_a', 'req-1', T0);
      await put('ten_a', 'req-1', T0 + 1);
      await put('ten_a', 'req-1', T0 - 5); // older: ignored
      await put('ten_a', 'req-2', T0);
      await put('ten_b', 'req-1', T0);
      expect((await s.usage.usage('ten_a')).feedback).toBe(2);
      expect((await s.usage.usage('ten_b')).feedback).toBe(1);
    });
  });
}
