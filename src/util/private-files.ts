/**
 * Tollgate's own files on local disk (tollgate.db and its -wal/-shm, the ledger spool, the
 * webhook signing key, stored uploads) can hold prompt text, answers and secrets: they are created
 * readable by their owner only (files 0600, folders 0700), and ones left wider by an older
 * version (0644 / 0755 under the usual umask) are tightened when they are opened.
 *
 * A chmod that fails (a file owned by another user, a file system without POSIX modes) is not an
 * error: the gateway runs as it did, with the modes it found. On Windows, modes do not apply.
 */
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readdirSync, statSync } from 'node:fs';

export const PRIVATE_FILE_MODE = 0o600;
export const PRIVATE_DIR_MODE = 0o700;

function chmodQuietly(path: string, mode: number): void {
  try {
    chmodSync(path, mode);
  } catch {
    /* not ours to change (see the header) */
  }
}

/**
 * Creates the folder (and missing parents) 0700, or tightens an existing one to 0700. A shared
 * folder is never tightened: one with the sticky bit or writable by others (/tmp), or, with
 * `onlyIfOwn`, one holding an entry that is not Tollgate's (`storage.dir: .` in a project).
 */
export function ensurePrivateDir(dir: string, onlyIfOwn?: (entry: string) => boolean): void {
  const existed = existsSync(dir);
  mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  if (!existed) return chmodQuietly(dir, PRIVATE_DIR_MODE); // the umask may have taken bits from the mode
  try {
    const mode = statSync(dir).mode;
    if ((mode & 0o777) === PRIVATE_DIR_MODE) return;
    if ((mode & 0o1000) !== 0 || (mode & 0o002) !== 0) return;
    if (onlyIfOwn && !readdirSync(dir).every(onlyIfOwn)) return;
  } catch {
    return;
  }
  chmodQuietly(dir, PRIVATE_DIR_MODE);
}

/** Creates the file empty with mode 0600 when it is missing, else tightens it to 0600. */
export function ensurePrivateFile(file: string): void {
  try {
    closeSync(openSync(file, 'wx', PRIVATE_FILE_MODE));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    chmodQuietly(file, PRIVATE_FILE_MODE);
  }
}

/** Tightens each of the files that exist to 0600 (e.g. a database's -wal and -shm). */
export function tightenFiles(...files: string[]): void {
  for (const f of files) if (existsSync(f)) chmodQuietly(f, PRIVATE_FILE_MODE);
}
