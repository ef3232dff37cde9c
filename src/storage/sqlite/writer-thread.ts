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
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { Database } from './database.js';

// CommonJS, evaluated in the worker; better-sqlite3 is resolved by the main thread and passed in.
const WORKER = `
const { workerData, parentPort } = require('node:worker_threads');
const Database = require(workerData.module);
const db = new Database(workerData.file);
db.pragma('journal_mode = WAL');
db.pragma('synchronous = NORMAL');
db.pragma('busy_timeout = 5000');
const statements = new Map();
const checkpoint = () => { try { db.pragma('wal_checkpoint(PASSIVE)'); } catch {} };
const timer = setInterval(checkpoint, workerData.checkpointMs);
parentPort.on('message', (m) => {
  if (m.kind === 'stop') {
    clearInterval(timer);
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
  resolve: (added: number) => void;
  reject: (err: Error) => void;
}

export class SqliteWriterThread {
  private worker: Worker | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private stopping: Promise<void> | undefined;
  private readonly module = createRequire(import.meta.url).resolve('better-sqlite3');

  constructor(
    db: Database,
    private readonly file: string,
    private readonly checkpointMs = 1_000,
  ) {
    db.pragma('wal_autocheckpoint = 0'); // the worker's connection checkpoints
    this.start();
  }

  private start(): Worker {
    const worker = new Worker(WORKER, { eval: true, workerData: { module: this.module, file: this.file, checkpointMs: this.checkpointMs } });
    worker.unref();
    worker.on('message', (m: { kind: string; id: number; added?: number; message?: string }) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.kind === 'done') p.resolve(m.added ?? 0);
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
    if (this.stopping) return Promise.reject(new Error('the SQLite writer thread is stopped'));
    const worker = this.worker ?? this.start();
    const id = this.nextId++;
    return new Promise<number>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ kind: 'insert', id, sql, rows });
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
