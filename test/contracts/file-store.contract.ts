/**
 * Behaviour every `FileStore` adapter must have (src/jobs/types.ts): files (bytes kept exactly,
 * per tenant) and batches (compare-and-set status changes). An adapter's test file calls
 * `runFileStoreContract(name, factory)`; `factory` must return an empty store each time, with a
 * `close` that releases what it opened.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BatchRecord, FileRecord, FileStore } from '../../src/jobs/types.js';

const T0 = Date.UTC(2025, 0, 1);
const DAY = 86_400_000;

export interface FileStoreUnderTest {
  store: FileStore;
  close(): Promise<void>;
}

let counter = 0;
const hex24 = () => `${(++counter).toString(16).padStart(8, '0')}${randomBytes(8).toString('hex')}`;

function file(overrides: Partial<FileRecord> = {}): FileRecord {
  return {
    id: `file-${hex24()}`,
    tenantId: 'ten_a',
    purpose: 'batch',
    filename: 'input.jsonl',
    bytes: 0,
    createdAt: T0,
    expiresAt: null,
    ...overrides,
  };
}

function batch(overrides: Partial<BatchRecord> = {}): BatchRecord {
  return {
    id: `batch_${hex24()}`,
    tenantId: 'ten_a',
    keyId: 'key_a',
    endpoint: '/v1/chat/completions',
    inputFileId: 'file-input',
    completionWindow: '24h',
    status: 'validating',
    outputFileId: null,
    errorFileId: null,
    errors: [],
    requestCounts: { total: 0, completed: 0, failed: 0 },
    metadata: {},
    createdAt: T0,
    inProgressAt: null,
    expiresAt: T0 + DAY,
    finalizingAt: null,
    completedAt: null,
    failedAt: null,
    expiredAt: null,
    cancellingAt: null,
    cancelledAt: null,
    ...overrides,
  };
}

export function runFileStoreContract(name: string, factory: () => Promise<FileStoreUnderTest>): void {
  describe(`FileStore contract: ${name}`, () => {
    let subject: FileStoreUnderTest;
    let store: FileStore;

    beforeEach(async () => {
      subject = await factory();
      store = subject.store;
    });

    afterEach(async () => {
      await subject.close();
    });

    const put = async (overrides: Partial<FileRecord> = {}, content: Buffer = Buffer.from('{"a":1}\n')): Promise<FileRecord> => {
      const f = file({ bytes: content.length, ...overrides });
      await store.putFile(f, content);
      return f;
    };

    describe('files', () => {
      it('keeps a file and its bytes exactly, for its tenant only', async () => {
        const bytes = Buffer.from([0x00, 0xff, 0xfe, 0x80, 0x0a, 0x5c, 0x78, 0x27, 0x22, 0xc3, 0x28, 0x00]); // not UTF-8
        const f = await put({ filename: 'weird name ü.jsonl', expiresAt: T0 + DAY }, bytes);
        expect(await store.getFile(f.id, 'ten_a')).toEqual(f);
        expect(await store.getContent(f.id, 'ten_a')).toEqual(bytes);
        expect(Buffer.isBuffer(await store.getContent(f.id, 'ten_a'))).toBe(true);
        expect(await store.getFile(f.id, 'ten_b')).toBeUndefined();
        expect(await store.getContent(f.id, 'ten_b')).toBeUndefined();
        expect(await store.getFile('file-unknown', 'ten_a')).toBeUndefined();
        expect(await store.getContent('file-unknown', 'ten_a')).toBeUndefined();
      });

      it('keeps a 5 MB file and an empty one byte for byte', async () => {
        const big = randomBytes(5 * 1024 * 1024);
        const f = await put({}, big);
        const back = await store.getContent(f.id, 'ten_a');
        expect(back?.length).toBe(big.length);
        expect(back?.equals(big)).toBe(true);
        const empty = await put({}, Buffer.alloc(0));
        expect((await store.getContent(empty.id, 'ten_a'))?.length).toBe(0);
        expect((await store.getFile(f.id, 'ten_a'))?.bytes).toBe(5 * 1024 * 1024);
      });

      it('stores a file from a path on disk (a spooled upload), byte for byte', async () => {
        const dir = mkdtempSync(join(tmpdir(), 'tollgate-spool-'));
        try {
          const big = randomBytes(3 * 1024 * 1024 + 17); // more than one chunk, not a multiple of one
          const path = join(dir, 'upload.part');
          writeFileSync(path, big);
          const f = file({ bytes: big.length });
          await store.putFile(f, { path });
          expect((await store.getContent(f.id, 'ten_a'))?.equals(big)).toBe(true);
          expect(await store.getFile(f.id, 'ten_a')).toEqual(f);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      });

      it('refuses a second file with the same id', async () => {
        const f = await put();
        await expect(store.putFile(f, Buffer.from('x'))).rejects.toThrow();
      });

      it('lists newest first with a cursor and a purpose filter', async () => {
        const files: FileRecord[] = [];
        for (let i = 0; i < 7; i++) files.push(await put({ createdAt: T0 + i, purpose: i % 3 === 0 ? 'batch_output' : 'batch' }));
        await put({ tenantId: 'ten_b', createdAt: T0 + 100 });
        const newest = [...files].reverse().map((f) => f.id);

        const first = await store.listFiles('ten_a', { limit: 3 });
        expect(first.data.map((f) => f.id)).toEqual(newest.slice(0, 3));
        expect(first.hasMore).toBe(true);
        expect(first.data[0]).toEqual(files[6]);
        const second = await store.listFiles('ten_a', { limit: 3, after: first.data[2]!.id });
        expect(second.data.map((f) => f.id)).toEqual(newest.slice(3, 6));
        expect(second.hasMore).toBe(true);
        const last = await store.listFiles('ten_a', { limit: 3, after: second.data[2]!.id });
        expect(last).toEqual({ data: [files[0]], hasMore: false });

        const outputs = await store.listFiles('ten_a', { purpose: 'batch_output', limit: 100 });
        expect(outputs.data.map((f) => f.id)).toEqual([files[6]!.id, files[3]!.id, files[0]!.id]);
        expect((await store.listFiles('ten_a', { purpose: 'batch', limit: 2, after: files[5]!.id })).data.map((f) => f.id)).toEqual([
          files[4]!.id,
          files[2]!.id,
        ]);
        expect(await store.listFiles('ten_c', { limit: 10 })).toEqual({ data: [], hasMore: false });
      });

      it('orders files created in the same millisecond by id, without skipping any across pages', async () => {
        const same: FileRecord[] = [];
        for (let i = 0; i < 5; i++) same.push(await put({ createdAt: T0 }));
        const seen: string[] = [];
        let after: string | undefined;
        for (;;) {
          const page = await store.listFiles('ten_a', { limit: 2, ...(after ? { after } : {}) });
          seen.push(...page.data.map((f) => f.id));
          if (!page.hasMore) break;
          after = page.data.at(-1)!.id;
        }
        expect(seen).toEqual(same.map((f) => f.id).sort().reverse());
      });

      it('deletes a file of its tenant only', async () => {
        const f = await put();
        expect(await store.deleteFile(f.id, 'ten_b')).toBe(false);
        expect(await store.deleteFile(f.id, 'ten_a')).toBe(true);
        expect(await store.getFile(f.id, 'ten_a')).toBeUndefined();
        expect(await store.getContent(f.id, 'ten_a')).toBeUndefined();
        expect(await store.deleteFile(f.id, 'ten_a')).toBe(false);
      });

      it('deletes the files whose expiry has come, and keeps the others', async () => {
        const old = await put({ expiresAt: T0 + 1_000 });
        const exact = await put({ expiresAt: T0 + 2_000 });
        const later = await put({ expiresAt: T0 + 3_000, tenantId: 'ten_b' });
        const kept = await put({ expiresAt: null });
        expect(await store.deleteExpiredFiles(T0 + 2_000)).toBe(2);
        expect(await store.getFile(old.id, 'ten_a')).toBeUndefined();
        expect(await store.getFile(exact.id, 'ten_a')).toBeUndefined();
        expect(await store.getFile(later.id, 'ten_b')).toEqual(later);
        expect(await store.getFile(kept.id, 'ten_a')).toEqual(kept);
        expect(await store.deleteExpiredFiles(T0 + 2_000)).toBe(0);
      });
    });

    describe('batches', () => {
      it('creates a batch and gives it back whole; tenant-scoped when a tenant is given', async () => {
        const b = batch({
          endpoint: '/v1/embeddings',
          errors: [{ code: 'invalid_json', message: 'Line 3 is not JSON.', line: 3, param: null }],
          requestCounts: { total: 12, completed: 3, failed: 1 },
          metadata: { project: 'x', 'key with space': 'ü' },
        });
        await store.createBatch(b);
        expect(await store.getBatch(b.id)).toEqual(b);
        expect(await store.getBatch(b.id, 'ten_a')).toEqual(b);
        expect(await store.getBatch(b.id, 'ten_b')).toBeUndefined();
        expect(await store.getBatch('batch_unknown')).toBeUndefined();
        await expect(store.createBatch(b)).rejects.toThrow();
      });

      it('lists newest first with a cursor', async () => {
        const all: BatchRecord[] = [];
        for (let i = 0; i < 5; i++) {
          const b = batch({ createdAt: T0 + i });
          await store.createBatch(b);
          all.push(b);
        }
        await store.createBatch(batch({ tenantId: 'ten_b', createdAt: T0 + 50 }));
        const first = await store.listBatches('ten_a', { limit: 2 });
        expect(first.data).toEqual([all[4], all[3]]);
        expect(first.hasMore).toBe(true);
        const rest = await store.listBatches('ten_a', { limit: 10, after: all[3]!.id });
        expect(rest).toEqual({ data: [all[2], all[1], all[0]], hasMore: false });
      });

      it('updates a batch only from the expected statuses (compare-and-set)', async () => {
        const b = batch();
        await store.createBatch(b);
        const started = await store.updateBatch(b.id, ['validating'], {
          status: 'in_progress',
          inProgressAt: T0 + 10,
          requestCounts: { total: 3, completed: 0, failed: 0 },
          outputFileId: undefined, // undefined leaves a field as it is
        });
        expect(started).toEqual({ ...b, status: 'in_progress', inProgressAt: T0 + 10, requestCounts: { total: 3, completed: 0, failed: 0 } });
        expect(await store.getBatch(b.id)).toEqual(started);

        // Two finalizers read 'in_progress': the first wins, the second (stale) gets undefined.
        const winner = await store.updateBatch(b.id, ['in_progress'], { status: 'finalizing', finalizingAt: T0 + 20 });
        const loser = await store.updateBatch(b.id, ['in_progress'], { status: 'cancelling', cancellingAt: T0 + 21 });
        expect(winner?.status).toBe('finalizing');
        expect(loser).toBeUndefined();
        expect((await store.getBatch(b.id))?.status).toBe('finalizing');

        const done = await store.updateBatch(b.id, ['finalizing', 'cancelling'], {
          status: 'completed',
          completedAt: T0 + 30,
          outputFileId: 'file-out',
          errorFileId: null,
          errors: [{ code: 'x', message: 'y', line: null, param: 'body' }],
          metadata: { done: 'yes' },
        });
        expect(done).toMatchObject({ status: 'completed', completedAt: T0 + 30, finalizingAt: T0 + 20, outputFileId: 'file-out', metadata: { done: 'yes' } });
        expect(await store.getBatch(b.id)).toEqual(done);
        expect(await store.updateBatch(b.id, [], { status: 'failed' })).toBeUndefined();
        expect(await store.updateBatch('batch_unknown', ['validating'], { status: 'failed' })).toBeUndefined();
      });

      it('lets exactly one of several concurrent updates from the same status win', async () => {
        const b = batch({ status: 'in_progress' });
        await store.createBatch(b);
        const results = await Promise.all(
          Array.from({ length: 6 }, (_, i) => store.updateBatch(b.id, ['in_progress'], { status: 'finalizing', finalizingAt: T0 + i })),
        );
        expect(results.filter((r) => r !== undefined)).toHaveLength(1);
      });

      it('lists the batches in some statuses, oldest first (the sweeper\'s work list)', async () => {
        const mk = async (status: BatchRecord['status'], createdAt: number, tenantId = 'ten_a') => {
          const b = batch({ status, createdAt, tenantId });
          await store.createBatch(b);
          return b;
        };
        const p2 = await mk('in_progress', T0 + 2);
        await mk('completed', T0 + 1);
        const f3 = await mk('finalizing', T0 + 3, 'ten_b');
        const p1 = await mk('in_progress', T0 + 1);
        await mk('validating', T0);
        expect((await store.batchesIn(['in_progress', 'finalizing'], 10)).map((b) => b.id)).toEqual([p1.id, p2.id, f3.id]);
        expect((await store.batchesIn(['in_progress', 'finalizing'], 2)).map((b) => b.id)).toEqual([p1.id, p2.id]);
        expect(await store.batchesIn(['expired'], 10)).toEqual([]);
        expect(await store.batchesIn([], 10)).toEqual([]);
      });
    });
  });
}
