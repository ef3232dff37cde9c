import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/storage/sqlite/database.js';
import { SqliteJobStore } from '../../src/storage/sqlite/jobs.js';
import { newJob, runJobStoreContract } from './job-store.contract.js';

runJobStoreContract('sqlite', async () => {
  const db = openDatabase(':memory:');
  return { store: new SqliteJobStore(db), close: async () => void db.close() };
});

/**
 * A separate Node process that claims (and completes) jobs from `file` until the queue is empty.
 * It talks with the test over its stdin/stdout, one line at a time: it says `ready` once loaded
 * and waits for `go`; it says `claimed` after its first claim (one job) and waits for `go` again;
 * at the end it prints the ids it ran as JSON. The test lets both start at once, and both go on
 * only once both hold a job: each runs some, whichever is faster to load or to claim.
 */
interface Claimer {
  /** Resolves when the process has printed `line`. */
  said(line: 'ready' | 'claimed'): Promise<void>;
  go(): void;
  /** The ids it ran. */
  done: Promise<string[]>;
}

function claimer(file: string, owner: string): Claimer {
  const src = (p: string) => JSON.stringify(resolve(p));
  const code = `
    import { createInterface } from 'node:readline';
    import { openDatabase } from ${src('src/storage/sqlite/database.ts')};
    import { SqliteJobStore } from ${src('src/storage/sqlite/jobs.ts')};
    const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
    const go = async () => { if ((await lines.next()).value !== 'go') throw new Error('expected go'); };
    const db = openDatabase(${JSON.stringify(file)});
    const store = new SqliteJobStore(db);
    process.stdout.write('ready\\n');
    await go();
    const ids = [];
    for (;;) {
      const jobs = await store.claim({ owner: ${JSON.stringify(owner)}, limit: 1 + (ids.length % 3), leaseMs: 60_000, now: Date.now() });
      if (jobs.length === 0) break;
      if (ids.length === 0) {
        process.stdout.write('claimed\\n');
        await go();
      }
      await new Promise((r) => setTimeout(r, 1)); // "runs" the jobs: the other process gets the file meanwhile
      for (const j of jobs) {
        ids.push(j.id);
        if (!(await store.complete(j.id, ${JSON.stringify(owner)}, { result: {}, costPico: 1, promptTokens: 1, completionTokens: 1 }, Date.now()))) throw new Error('lost ' + j.id);
      }
    }
    db.close();
    process.stdout.write(JSON.stringify(ids) + '\\n');
    process.stdin.destroy();
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const listeners = new Set<() => void>();
  child.stdout.on('data', (b: Buffer) => {
    out += b.toString();
    for (const l of [...listeners]) l();
  });
  child.stderr.on('data', (b: Buffer) => (err += b.toString()));
  const done = new Promise<string[]>((res, rej) => {
    child.once('exit', (code) => {
      for (const l of [...listeners]) l();
      if (code === 0) res(JSON.parse(out.trim().split('\n').at(-1)!) as string[]);
      else rej(new Error(`claimer ${owner} exited with ${code}: ${err}`));
    });
  });
  done.catch(() => undefined); // reported by whoever awaits it
  return {
    said: (line) =>
      new Promise<void>((res, rej) => {
        const check = () => {
          if (out.split('\n').includes(line)) {
            listeners.delete(check);
            res();
          } else if (child.exitCode !== null) {
            listeners.delete(check);
            rej(new Error(`claimer ${owner} exited before saying ${line}: ${err}`));
          }
        };
        listeners.add(check);
        check();
      }),
    go: () => void child.stdin.write('go\n'),
    done,
  };
}

describe('SqliteJobStore on a file', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });
  const tempFile = () => {
    const dir = mkdtempSync(join(tmpdir(), 'tollgate-jobs-'));
    dirs.push(dir);
    return join(dir, 'tollgate.db');
  };

  it('never hands one job to two processes claiming from the same file at once', async () => {
    const file = tempFile();
    const db = openDatabase(file);
    const jobs = Array.from({ length: 200 }, (_, i) => newJob({ tenantId: `ten_${i % 4}`, createdAt: Date.now() - 1_000 }));
    await new SqliteJobStore(db).enqueueMany(jobs);
    db.close();
    const procs = [claimer(file, 'proc-a'), claimer(file, 'proc-b')];
    await Promise.all(procs.map((p) => p.said('ready'))); // both loaded: start them at once
    for (const p of procs) p.go();
    await Promise.all(procs.map((p) => p.said('claimed'))); // both hold a job: go on, racing
    for (const p of procs) p.go();
    const [a, b] = await Promise.all(procs.map((p) => p.done));
    const all = [...a!, ...b!];
    expect(new Set(all).size).toBe(all.length);
    expect(all.sort()).toEqual(jobs.map((j) => j.id).sort());
    expect(a!.length).toBeGreaterThan(0);
    expect(b!.length).toBeGreaterThan(0);
    const check = openDatabase(file);
    expect(await new SqliteJobStore(check).stats(Date.now())).toEqual({ byPriority: [] }); // all done
    check.close();
  }, 30_000);

  it('keeps jobs across a reopen', async () => {
    const file = tempFile();
    const db = openDatabase(file);
    const { job } = await new SqliteJobStore(db).enqueue(newJob({ idempotencyKey: 'k' }));
    db.close();
    const again = openDatabase(file);
    const store = new SqliteJobStore(again);
    expect(await store.get(job.id)).toEqual(job);
    expect((await store.enqueue(newJob({ idempotencyKey: 'k' }))).created).toBe(false);
    again.close();
  });
});
