/**
 * The embedded database's write thread: usage events are inserted, and the WAL checkpointed, on
 * a worker thread with its own connection, so the event loop never waits for SQLite's commits or
 * checkpoints on the hot path.
 *
 * Why (measured with `npm run bench -- cache`, ~10k req/s of cache hits, each writing one usage
 * event): on the main thread the ledger took ~21% of the gateway's CPU and held the event loop for
 * stretches of up to ~24 ms per flush, and SQLite's automatic checkpoint (run by whichever
 * connection commits past 1,000 pages of WAL) added more. Here the worker commits the ledger's
 * batches, so the automatic checkpoints run on its connection too; the main connection (records,
 * idempotency keys, semantic entries: a few writes per request at most) never checkpoints
 * (`wal_autocheckpoint = 0`), and the worker also runs a PASSIVE checkpoint every second, which
 * keeps the WAL short when the ledger is idle.
 *
 * `insert(sql, rows)` resolves once the rows are committed (durable like a main-thread commit:
 * WAL, synchronous = NORMAL). A worker that dies rejects what it had and is started again on the
 * next call.
 *
 * The worker also gives disk space back (src/storage/sqlite/maintenance.ts) every
 * `maintenanceMs`, and on `maintain()`: free pages in slices (`incremental_vacuum`, a pause
 * between two so the main connection gets its turn), then a TRUNCATE checkpoint once a PASSIVE one
 * caught up.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { Database } from './database.js';
import { JOURNAL_SIZE_LIMIT, MAINTENANCE_MS, MIN_FREE_PAGES, SLICE_PAGES } from './maintenance.js';

/** What one maintenance pass did. */
export interface MaintenanceResult {
  /** Pages given back to the file system. */
  freedPages: number;
  /** Whether the WAL file was emptied (TRUNCATE checkpoint). */
  walTruncated: boolean;
}

// CommonJS, evaluated in the worker; better-sqlite3 is resolved by the main thread and passed in.
const WORKER = `
const { workerData, parentPort } = require('node:worker_threads');
const Database = require(workerData.module);
const db = new Database(workerData.file);
db.pragma('journal_mode = WAL');
db.pragma('synchronous = NORMAL');
db.pragma('busy_timeout = ' + workerData.busyTimeoutMs); // the main connection's (storage.busyTimeoutMs)
db.pragma('journal_size_limit = ' + workerData.journalSizeLimit);
const statements = new Map();
const checkpoint = () => { try { db.pragma('wal_checkpoint(PASSIVE)'); } catch {} };
const timer = setInterval(checkpoint, workerData.checkpointMs);
const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
let maintaining;
async function maintainOnce(minFree) {
  let freedPages = 0;
  if (db.pragma('auto_vacuum', { simple: true }) === 2) {
    let free = db.pragma('freelist_count', { simple: true });
    if (free >= minFree) {
      while (free > 0) {
        db.pragma('incremental_vacuum(' + workerData.slicePages + ')');
        const left = db.pragma('freelist_count', { simple: true });
        if (left >= free) break;
        freedPages += free - left;
        free = left;
        if (free > 0) await pause(5);
      }
    }
  }
  let walTruncated = false;
  const [passive] = db.pragma('wal_checkpoint(PASSIVE)');
  if (passive && passive.busy === 0 && passive.log === passive.checkpointed) {
    const [truncate] = db.pragma('wal_checkpoint(TRUNCATE)');
    walTruncated = !!truncate && truncate.busy === 0;
  }
  return { freedPages, walTruncated };
}
function maintain(minFree) {
  const run = (maintaining || Promise.resolve()).then(() => maintainOnce(minFree));
  maintaining = run.catch(() => undefined);
  return run;
}
const maintenanceTimer = setInterval(() => { maintain(workerData.minFreePages).catch(() => undefined); }, workerData.maintenanceMs);
parentPort.on('message', (m) => {
  if (m.kind === 'maintain') {
    maintain(m.minFreePages).then(
      (r) => parentPort.postMessage({ kind: 'maintained', id: m.id, result: r }),
      (err) => parentPort.postMessage({ kind: 'failed', id: m.id, message: String(err && err.message || err) }),
    );
    return;
  }
  if (m.kind === 'stop') {
    clearInterval(timer);
    clearInterval(maintenanceTimer);
    checkpoint();
    db.close();
    parentPort.postMessage({ kind: 'stopped' });
    parentPort.close();
    return;
  }
  try {
    let stmt = statements.get(m.sql);
    if (!stmt) { stmt = db.prepare(m.sql); statements.set(m.sql, stmt); }
    const added = db.transaction((rows) => { let n = 0; for (const r of rows) n += stmt.run(r).changes; return n; }).immediate(m.rows);
    parentPort.postMessage({ kind: 'done', id: m.id, added });
  } catch (err) {
    parentPort.postMessage({ kind: 'failed', id: m.id, message: String(err && err.message || err) });
  }
});
`;

interface Pending {
  resolve: (value: never) => void;
  reject: (err: Error) => void;
}

export class SqliteWriterThread {
  private worker: Worker | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private stopping: Promise<void> | undefined;
  private readonly module = createRequire(import.meta.url).resolve('better-sqlite3');
  /** The worker's connection waits for locks as long as the main one does. */
  private readonly busyTimeoutMs: number;

  constructor(
    db: Database,
    private readonly file: string,
    private readonly checkpointMs = 1_000,
    private readonly maintenanceMs = MAINTENANCE_MS,
  ) {
    db.pragma('wal_autocheckpoint = 0'); // the worker's connection checkpoints
    const busyTimeoutMs = Number(db.pragma('busy_timeout', { simple: true }));
    this.busyTimeoutMs = Number.isFinite(busyTimeoutMs) ? busyTimeoutMs : 5_000;
    this.start();
  }

  private start(): Worker {
    const worker = new Worker(WORKER, {
      eval: true,
      workerData: {
        module: this.module,
        file: this.file,
        checkpointMs: this.checkpointMs,
        busyTimeoutMs: this.busyTimeoutMs,
        maintenanceMs: this.maintenanceMs,
        journalSizeLimit: JOURNAL_SIZE_LIMIT,
        slicePages: SLICE_PAGES,
        minFreePages: MIN_FREE_PAGES,
      },
    });
    worker.unref();
    worker.on('message', (m: { kind: string; id: number; added?: number; result?: MaintenanceResult; message?: string }) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.kind === 'done') p.resolve((m.added ?? 0) as never);
      else if (m.kind === 'maintained') p.resolve(m.result as never);
      else p.reject(new Error(`SQLite write failed: ${m.message}`));
    });
    const gone = (err: unknown) => {
      if (this.worker === worker) this.worker = undefined;
      for (const p of this.pending.values()) p.reject(new Error(`the SQLite writer thread stopped: ${(err as Error)?.message ?? err}`));
      this.pending.clear();
    };
    worker.on('error', gone);
    worker.on('exit', (code) => gone(new Error(`exit code ${code}`)));
    this.worker = worker;
    return worker;
  }

  /** Runs `sql` once per row in one transaction on the writer thread; resolves with the rows changed. */
  insert(sql: string, rows: object[]): Promise<number> {
    return this.request<number>({ kind: 'insert', sql, rows });
  }

  /**
   * Runs a maintenance pass now (it also runs every `maintenanceMs`): frees pages when at least
   * `minFreePages` are free (default: maintenance.ts MIN_FREE_PAGES), then empties the WAL.
   */
  maintain(minFreePages = MIN_FREE_PAGES): Promise<MaintenanceResult> {
    return this.request<MaintenanceResult>({ kind: 'maintain', minFreePages });
  }

  private request<T>(message: Record<string, unknown>): Promise<T> {
    if (this.stopping) return Promise.reject(new Error('the SQLite writer thread is stopped'));
    const worker = this.worker ?? this.start();
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (value: never) => void, reject });
      worker.postMessage({ ...message, id });
    });
  }

  /** Lets writes in progress finish, checkpoints once more, and ends the thread. */
  stop(): Promise<void> {
    this.stopping ??= new Promise<void>((resolve) => {
      const worker = this.worker;
      if (!worker) return resolve();
      const done = () => resolve();
      worker.once('exit', done);
      worker.on('message', (m: { kind: string }) => {
        if (m.kind === 'stopped') void worker.terminate().then(done, done);
      });
      worker.postMessage({ kind: 'stop' });
      setTimeout(() => void worker.terminate().then(done, done), 5_000).unref();
    });
    return this.stopping;
  }
}
