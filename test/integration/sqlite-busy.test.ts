/**
 * Issue 14, item 7: "database is locked" surfaced as a 500 in embedded mode. Another connection
 * to tollgate.db (the ledger's writer thread, a `tollgate keys` command, a second process) holds
 * the write lock while an admin change runs: the change must wait for the lock (busy timeout) and
 * succeed, and when the lock outlasts the timeout the answer is a 503 with Retry-After, never a
 * 500.
 */
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type TestGateway, auth, startGateway } from '../helpers/gateway.js';

// A second connection, on its own thread (the gateway's main thread blocks while it waits for the
// lock, so the holder must run elsewhere). It takes the write lock, says so, and releases it after
// `holdMs`, or when told.
const HOLDER = `
const { workerData, parentPort } = require('node:worker_threads');
const Database = require(workerData.module);
const db = new Database(workerData.file);
db.exec('BEGIN IMMEDIATE');
db.prepare("UPDATE tenants SET name = name WHERE id = 'default'").run();
const release = () => { if (db.inTransaction) { db.exec('COMMIT'); db.close(); parentPort.postMessage('released'); } };
if (workerData.holdMs > 0) setTimeout(release, workerData.holdMs);
parentPort.on('message', (m) => { if (m === 'release') release(); });
parentPort.postMessage('locked');
`;

interface Holder {
  released: Promise<void>;
  release(): void;
  stop(): Promise<void>;
}

async function holdWriteLock(file: string, holdMs: number): Promise<Holder> {
  const module = createRequire(import.meta.url).resolve('better-sqlite3');
  const worker = new Worker(HOLDER, { eval: true, workerData: { module, file, holdMs } });
  let onReleased!: () => void;
  const released = new Promise<void>((resolve) => (onReleased = resolve));
  await new Promise<void>((resolve, reject) => {
    worker.once('error', reject);
    worker.on('message', (m) => {
      if (m === 'locked') resolve();
      if (m === 'released') onReleased();
    });
  });
  return {
    released,
    release: () => worker.postMessage('release'),
    stop: async () => {
      await worker.terminate();
    },
  };
}

async function admin(gw: TestGateway, method: string, path: string, body?: unknown) {
  const res = await fetch(`${gw.url}/admin/v1${path}`, {
    method,
    headers: { ...auth(gw.adminKey), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, headers: res.headers, body: (await res.json()) as any };
}

describe('embedded writes while another connection holds the write lock', () => {
  let gw: TestGateway;
  let holder: Holder | undefined;
  let keyId: string;
  beforeAll(async () => {
    gw = await startGateway();
    keyId = (await admin(gw, 'GET', '/keys')).body.data[0].id;
  });
  afterEach(async () => {
    await holder?.stop();
    holder = undefined;
  });
  afterAll(() => gw.close());
  const file = () => join(gw.gateway.config.storage.dir, 'tollgate.db');

  it.each([
    ['PATCH a key', () => ['PATCH', `/keys/${keyId}`, { name: 'renamed while locked' }]],
    ['PATCH a tenant', () => ['PATCH', '/tenants/default', { metadata: { locked: 'yes' } }]],
    ['PUT a key policy', () => ['PUT', `/keys/${keyId}/policy`, { limits: { key: { requestsPerMinute: 1000 } } }]],
    ['POST a key', () => ['POST', '/keys', { tenant_id: 'default' }]],
    ['revoke a key', () => ['POST', `/keys/${keyId}/revoke`, undefined]],
  ] as Array<[string, () => [string, string, unknown]]>)('%s waits for the lock and succeeds (no "database is locked")', async (_name, req) => {
    // The holder releases on its own, shortly: the gateway's thread is blocked meanwhile.
    holder = await holdWriteLock(file(), 150);
    const [method, path, body] = req();
    const res = await admin(gw, method, path, body);
    expect(res.status, JSON.stringify(res.body)).toBeLessThan(300);
    await holder.released;
  });

  it('a lock held past the busy timeout: 503 storage_unavailable with Retry-After, never a 500', async () => {
    const short = await startGateway({ storage: { kind: 'embedded', busyTimeoutMs: 20 } });
    try {
      const id = (await admin(short, 'GET', '/keys')).body.data[0].id;
      holder = await holdWriteLock(join(short.gateway.config.storage.dir, 'tollgate.db'), 0);
      const res = await admin(short, 'PATCH', `/keys/${id}`, { name: 'blocked' });
      expect(res.status, JSON.stringify(res.body)).toBe(503);
      expect(res.body.type).toMatch(/storage_unavailable$/);
      expect(res.headers.get('retry-after')).toBe('1');
      holder.release();
      await holder.released;
      expect((await admin(short, 'PATCH', `/keys/${id}`, { name: 'after' })).status).toBe(200);
    } finally {
      await short.close();
    }
  });
});
