/**
 * One benchmark at a time per machine: two runs at once share the cores and spoil each other's
 * numbers. The lock is a file holding the owner's PID (created atomically); a lock whose PID is
 * gone is stale and taken over.
 */
import { openSync, readFileSync, rmSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const LOCK = join(tmpdir(), 'tollgate-bench.lock');

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function tryLock(): number | undefined {
  try {
    const fd = openSync(LOCK, 'wx');
    writeSync(fd, String(process.pid));
    closeSync(fd);
    return undefined;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  let owner = Number.NaN;
  try {
    owner = Number(readFileSync(LOCK, 'utf8').trim());
  } catch {
    // removed meanwhile: try again
    return tryLock();
  }
  if (!Number.isInteger(owner) || owner <= 0 || !alive(owner)) {
    rmSync(LOCK, { force: true });
    return tryLock();
  }
  return owner;
}

/**
 * Takes the machine-wide bench lock, waiting up to `waitMs` for another run to finish. Returns
 * the release function; throws if the lock stays held.
 */
export async function acquireBenchLock(waitMs: number, log: (line: string) => void): Promise<() => void> {
  const deadline = Date.now() + waitMs;
  let announced = false;
  for (;;) {
    const owner = tryLock();
    if (owner === undefined) break;
    if (Date.now() >= deadline) throw new Error(`another benchmark (PID ${owner}) still holds ${LOCK}; not running two at once`);
    if (!announced) log(`waiting for another benchmark run (PID ${owner}) to finish...`);
    announced = true;
    await new Promise((r) => setTimeout(r, 2_000));
  }
  const release = () => {
    try {
      if (readFileSync(LOCK, 'utf8').trim() === String(process.pid)) rmSync(LOCK, { force: true });
    } catch {
      // already gone
    }
  };
  process.once('exit', release);
  return release;
}
