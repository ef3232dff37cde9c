/**
 * Gets usage events into the Ledger off the hot path, in batches, without losing any.
 *
 * `record()` (called by the respond stage just before the answer's last byte is written) appends
 * the event as one JSON line to the current spool segment with a synchronous write: once it
 * returns, the event survives a crash of the process (it is in the OS's page cache, then on disk). A flush (every
 * `flushIntervalMs`, or at `maxBatch` events) rotates to a new segment and appends the closed
 * segment's events to the Ledger in one call; only when that succeeds is the segment deleted. A
 * failed flush keeps its segment and is retried with backoff (e.g. PostgreSQL down: events pile up
 * on local disk, not in memory). At start, segments left by a crash are replayed. Replays are safe
 * because the Ledger is idempotent by request id: an event is counted exactly once.
 *
 * Several processes may share one spool root (distributed mode, same working directory): each
 * writes in its own folder `<root>/<pid>` (holding an `owner` file with its pid) and, at start,
 * adopts the folders of processes that are no longer alive.
 */
import { closeSync, existsSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Logger } from '../observability/logger.js';
import type { Ledger, UsageEvent } from '../storage/types.js';
import { PRIVATE_FILE_MODE, ensurePrivateDir, tightenFiles } from '../util/private-files.js';

export interface LedgerWriterOptions {
  ledger: Ledger;
  /** Root folder of the spool (created if missing); this process writes in `<spoolDir>/<pid>`. */
  spoolDir: string;
  log: Logger;
  flushIntervalMs?: number;
  maxBatch?: number;
  /** Longest wait between retries of a failed flush. */
  maxRetryDelayMs?: number;
  /** Called after each failed flush (metrics). */
  onFlushError?: (err: unknown, pendingEvents: number) => void;
}

interface Segment {
  file: string;
  events: UsageEvent[];
}

const SEGMENT = /^spool-(\d+)\.jsonl$/;
/** How long the events of a segment the Ledger took are kept for {@link LedgerWriter.unflushedSpent}. */
const RECENT_MS = 10_000;

export class LedgerWriter {
  private readonly ledger: Ledger;
  private readonly root: string;
  private readonly dir: string;
  private readonly log: Logger;
  private readonly flushIntervalMs: number;
  private readonly maxBatch: number;
  private readonly maxRetryDelayMs: number;
  private readonly onFlushError: LedgerWriterOptions['onFlushError'];

  private seq = 0;
  private current: Segment | undefined;
  private fd: number | undefined;
  /** Closed segments not yet in the Ledger, oldest first. */
  private readonly backlog: Segment[] = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private failures = 0;
  private flushRequested = false;
  private unwritten: UsageEvent[] = [];
  /** Segments the Ledger took in the last RECENT_MS, newest last (see {@link unflushedSpent}). */
  private readonly recent: Array<{ at: number; events: UsageEvent[] }> = [];
  /** Callers of `record` waiting for their event to be on local disk. */
  private onWritten: Array<() => void> = [];
  private closed = false;

  constructor(opts: LedgerWriterOptions) {
    this.ledger = opts.ledger;
    this.root = opts.spoolDir;
    this.dir = join(opts.spoolDir, String(process.pid));
    this.log = opts.log;
    this.flushIntervalMs = opts.flushIntervalMs ?? 200;
    // Small batches: a synchronous ledger blocks the event loop while it commits one (~1 ms per 100 rows).
    this.maxBatch = opts.maxBatch ?? 100;
    this.maxRetryDelayMs = opts.maxRetryDelayMs ?? 30_000;
    this.onFlushError = opts.onFlushError;
    // The spool holds usage events (and may hold prompt-derived fields): owner-only, and
    // tightened when an older version left it wider (src/util/private-files.ts).
    ensurePrivateDir(this.root);
    ensurePrivateDir(this.dir);
    writeFileSync(join(this.dir, 'owner'), String(process.pid), { mode: PRIVATE_FILE_MODE });
    tightenFiles(join(this.dir, 'owner'));
  }

  /** Replays segments a previous process left behind; resolves once they are in the Ledger. */
  async start(): Promise<number> {
    for (const folder of this.foldersToReplay()) {
      const files = readdirSync(folder)
        .map((f) => SEGMENT.exec(f))
        .filter((m): m is RegExpExecArray => m !== null)
        .sort((a, b) => Number(a[1]) - Number(b[1]));
      for (const m of files) {
        if (folder === this.dir) this.seq = Math.max(this.seq, Number(m[1]) + 1);
        const file = join(folder, m[0]);
        tightenFiles(file);
        this.backlog.push({ file, events: parseSegment(readFileSync(file, 'utf8')) });
      }
    }
    const replayed = this.backlog.reduce((n, s) => n + s.events.length, 0);
    if (replayed > 0) {
      this.log.info({ segments: this.backlog.length, events: replayed }, 'replaying spooled usage events');
      await this.flush();
    }
    return replayed;
  }

  /** This process's folder, and those of dead processes (adopted); segments in the root itself too (older layout). */
  private foldersToReplay(): string[] {
    const folders = [this.root];
    for (const entry of readdirSync(this.root, { withFileTypes: true })) {
      if (!entry.isDirectory()) continue;
      const folder = join(this.root, entry.name);
      if (folder === this.dir) continue;
      const ownerFile = join(folder, 'owner');
      const owner = existsSync(ownerFile) ? Number(readFileSync(ownerFile, 'utf8')) : Number.NaN;
      if (!processAlive(owner)) folders.push(folder);
    }
    folders.push(this.dir);
    return folders;
  }

  /**
   * Appends the event to the spool with a synchronous write: once this returns, the event survives
   * a crash of the process (it is in the OS's page cache, then on disk); it goes on to the Ledger
   * in a batch. The respond stage calls it before an answer's last byte leaves (src/pipeline/
   * stages/respond.ts), so no answer a client received can be lost to a crash before it is
   * billed. `onWritten` is called once it is on disk (here: before this returns): a job worker
   * stores a job's outcome only then.
   */
  record(event: UsageEvent, onWritten?: () => void): void {
    if (this.closed) throw new Error('ledger writer is closed');
    this.unwritten.push(event);
    if (onWritten) this.onWritten.push(onWritten);
    this.writeUnwritten();
  }

  /** Appends the events not yet written (those of a failed write, then the new one) to the current segment, in one write. */
  private readonly writeUnwritten = (): void => {
    if (this.unwritten.length === 0) return;
    const events = this.unwritten;
    this.unwritten = [];
    const seg = this.segment();
    let text = '';
    for (const e of events) text += `${JSON.stringify(e)}\n`;
    try {
      // A short write (a full disk, a signal) must not leave a torn line that the next event's
      // line would be appended to: write until all of it is out, or fail.
      const bytes = Buffer.from(text);
      for (let off = 0; off < bytes.length; ) off += writeSync(this.fd!, bytes, off);
    } catch (err) {
      // The events still reach the Ledger from memory at the next flush; until then a crash would
      // lose them (the answers already went out: serving is not held on a failing disk).
      this.log.error({ err, events: events.length }, 'could not write usage events to the spool; keeping them in memory until the ledger takes them');
    }
    for (const e of events) seg.events.push(e);
    const written = this.onWritten;
    this.onWritten = [];
    for (const cb of written) {
      try {
        cb();
      } catch {
        /* a caller's error is not the writer's */
      }
    }
    if (seg.events.length >= this.maxBatch) void this.flush();
    else this.schedule(this.flushIntervalMs);
  };

  /** Events recorded but not yet confirmed by the Ledger. */
  get pending(): number {
    return this.backlog.reduce((n, s) => n + s.events.length, 0) + (this.current?.events.length ?? 0) + this.unwritten.length;
  }

  /**
   * What the events matching `scope` in [from, to) cost that the Ledger does not hold yet (spooled,
   * not confirmed), plus, with `flushedSince`, those it took at or after that time (kept
   * RECENT_MS). A budget counter seeded from the Ledger alone would miss the former (a PostgreSQL
   * outage leaves minutes of spend in the spool); a sibling process told of a seed adds both
   * (src/metering/budget-seeding.ts). Shadow traffic is left out, as in `Ledger.spent`.
   */
  unflushedSpent(scope: { tenantId?: string; keyId?: string; userId?: string }, from: number, to: number, flushedSince?: number): number {
    let sum = 0;
    const add = (events: UsageEvent[]) => {
      for (const e of events) {
        if (e.ts < from || e.ts >= to || e.route === 'shadow') continue;
        if ((scope.tenantId !== undefined && e.tenantId !== scope.tenantId) || (scope.keyId !== undefined && e.keyId !== scope.keyId) || (scope.userId !== undefined && e.userId !== scope.userId)) continue;
        sum += e.costPico;
      }
    };
    for (const seg of this.backlog) add(seg.events);
    if (this.current) add(this.current.events);
    add(this.unwritten);
    if (flushedSince !== undefined) {
      this.pruneRecent();
      for (const r of this.recent) if (r.at >= flushedSince) add(r.events);
    }
    return sum;
  }

  private pruneRecent(): void {
    const cutoff = Date.now() - RECENT_MS;
    while (this.recent.length > 0 && this.recent[0]!.at < cutoff) this.recent.shift();
  }

  /** Writes everything recorded before the call to the Ledger (one flush runs at a time; a call during it extends it). */
  flush(): Promise<void> {
    this.writeUnwritten();
    this.flushRequested = true;
    this.flushing ??= this.doFlush().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  /** Flushes what it can and closes the spool; what could not be written stays on disk for the next start. */
  async close(): Promise<void> {
    if (this.closed) return;
    clearTimeout(this.timer);
    await this.flushing?.catch(() => undefined);
    await this.flush().catch(() => undefined);
    this.closed = true;
    clearTimeout(this.timer);
    this.rotate();
  }

  private segment(): Segment {
    if (!this.current) {
      const file = join(this.dir, `spool-${this.seq++}.jsonl`);
      this.fd = openSync(file, 'a', PRIVATE_FILE_MODE);
      this.current = { file, events: [] };
    }
    return this.current;
  }

  /** Closes the current segment into the backlog. */
  private rotate(): void {
    if (!this.current) return;
    closeSync(this.fd!);
    this.fd = undefined;
    if (this.current.events.length > 0) this.backlog.push(this.current);
    else rmSync(this.current.file, { force: true });
    this.current = undefined;
  }

  private schedule(ms: number): void {
    if (this.timer || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, ms);
    this.timer.unref();
  }

  private async doFlush(): Promise<void> {
    while (this.flushRequested) {
      this.flushRequested = false;
      this.rotate();
      if (!(await this.writeBacklog())) return;
    }
  }

  /** Appends closed segments oldest first; false when the Ledger failed (a retry is scheduled). */
  private async writeBacklog(): Promise<boolean> {
    while (this.backlog.length > 0) {
      const seg = this.backlog[0]!;
      try {
        for (let i = 0; i < seg.events.length; i += this.maxBatch) {
          await this.ledger.append(seg.events.slice(i, i + this.maxBatch));
          // A synchronous ledger (SQLite) blocks while it writes: let requests run between batches.
          await new Promise((resolve) => setImmediate(resolve));
        }
      } catch (err) {
        this.failures++;
        const delay = Math.min(this.maxRetryDelayMs, 100 * 2 ** Math.min(this.failures, 10));
        this.log.error({ err, pending: this.pending, retryInMs: delay }, 'ledger write failed; events stay spooled on disk');
        this.onFlushError?.(err, this.pending);
        this.schedule(delay);
        return false;
      }
      this.failures = 0;
      this.backlog.shift();
      this.recent.push({ at: Date.now(), events: seg.events });
      this.pruneRecent();
      rmSync(seg.file, { force: true });
      this.removeIfAdoptedAndEmpty(dirname(seg.file));
    }
    return true;
  }

  private removeIfAdoptedAndEmpty(folder: string): void {
    if (folder === this.dir || folder === this.root) return;
    if (readdirSync(folder).every((f) => f === 'owner')) rmSync(folder, { recursive: true, force: true });
  }
}

function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Parses a segment; a torn last line (crash mid-write) is dropped, as it was never acknowledged. */
function parseSegment(text: string): UsageEvent[] {
  const events: UsageEvent[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    try {
      events.push(JSON.parse(line) as UsageEvent);
    } catch {
      /* torn write */
    }
  }
  return events;
}
