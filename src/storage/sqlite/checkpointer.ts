/**
 * WAL checkpoints mostly off the event loop. SQLite's automatic checkpoint runs inside the commit
 * that crosses its threshold (1,000 pages), on the committing connection: in the gateway that is
 * the main thread, which stalls for the copy and its fsync (measured under ~11k req/s of cache
 * hits, each writing a usage event: event-loop delay p99 ~30 ms with the default).
 *
 * A worker thread with its own connection runs `wal_checkpoint(PASSIVE)` every second (PASSIVE
 * never blocks readers or writers; it copies what it can). It cannot end the WAL by itself while
 * the main thread keeps writing (new frames arrive during each pass), so the main connection keeps
 * an automatic checkpoint, at 4,000 pages: by then the worker has copied nearly everything, the
 * main thread's pass is short, and the WAL restarts from its beginning (measured: WAL bounded at
 * ~17 MB, event-loop delay p99 ~4 ms, rare 20-30 ms maxima). Without the worker the WAL would grow
 * without bound; without the main-thread threshold it does too (544 MB in 8 s).
 */
const MAIN_AUTOCHECKPOINT_PAGES = 4_000;
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { Database } from './database.js';

// CommonJS, evaluated in the worker: better-sqlite3 is resolved by the main thread and passed in.
const WORKER = `
const { workerData, parentPort } = require('node:worker_threads');
const Database = require(workerData.module);
const db = new Database(workerData.file);
db.pragma('busy_timeout = 1000');
const checkpoint = () => { try { db.pragma('wal_checkpoint(PASSIVE)'); } catch {} };
const timer = setInterval(checkpoint, workerData.intervalMs);
parentPort.on('message', () => {
  clearInterval(timer);
  checkpoint();
  db.close();
  parentPort.postMessage('stopped');
  parentPort.close();
});
`;

export class WalCheckpointer {
  private readonly worker: Worker;
  private stopped: Promise<void> | undefined;

  /** Raises `db`'s automatic checkpoint threshold and checkpoints `file` every `intervalMs` from a worker. */
  constructor(db: Database, file: string, intervalMs = 1_000) {
    db.pragma(`wal_autocheckpoint = ${MAIN_AUTOCHECKPOINT_PAGES}`);
    const module = createRequire(import.meta.url).resolve('better-sqlite3');
    this.worker = new Worker(WORKER, { eval: true, workerData: { module, file, intervalMs } });
    this.worker.unref();
    this.worker.on('error', () => {
      // The worker could not run: fall back to SQLite's own checkpoints on the main connection.
      db.pragma('wal_autocheckpoint = 1000');
    });
  }

  /** Stops the worker after a last checkpoint. */
  stop(): Promise<void> {
    this.stopped ??= new Promise<void>((resolve) => {
      const done = () => resolve();
      this.worker.once('exit', done);
      this.worker.once('message', () => void this.worker.terminate().then(done, done));
      this.worker.postMessage('stop');
      setTimeout(() => void this.worker.terminate().then(done, done), 2_000).unref();
    });
    return this.stopped;
  }
}
