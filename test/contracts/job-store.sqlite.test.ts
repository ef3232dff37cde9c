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

/** A separate Node process that claims (and completes) jobs from `file` until the queue is empty; prints the ids. */
function claimer(file: string, owner: string, startAt: number): Promise<string[]> {
  const src = (p: string) => JSON.stringify(resolve(p));
  const code = `
    import { openDatabase } from ${src('src/storage/sqlite/database.ts')};
    import { SqliteJobStore } from ${src('src/storage/sqlite/jobs.ts')};
    const db = openDatabase(${JSON.stringify(file)});
    const store = new SqliteJobStore(db);
    while (Date.now() < ${startAt}) await new Promise((r) => setTimeout(r, 5));
    const ids = [];
    for (;;) {
      const jobs = await store.claim({ owner: ${JSON.stringify(owner)}, limit: 1 + (ids.length % 3), leaseMs: 60_000, now: Date.now() });
      if (jobs.length === 0) break;
      await new Promise((r) => setTimeout(r, 1)); // "runs" the jobs: the other process gets the file meanwhile
      for (const j of jobs) {
        ids.push(j.id);
        if (!(await store.complete(j.id, ${JSON.stringify(owner)}, { result: {}, costPico: 1, promptTokens: 1, completionTokens: 1 }, Date.now()))) throw new Error('lost ' + j.id);
      }
    }
    db.close();
    process.stdout.write(JSON.stringify(ids));
  `;
  return new Promise((res, rej) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.once('exit', (code) => (code === 0 ? res(JSON.parse(out) as string[]) : rej(new Error(`claimer ${owner} exited with ${code}: ${err}`))));
  });
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
    const startAt = Date.now() + 2_000; // both processes loaded and waiting
    const [a, b] = await Promise.all([claimer(file, 'proc-a', startAt), claimer(file, 'proc-b', startAt)]);
    const all = [...a, ...b];
    expect(new Set(all).size).toBe(all.length);
    expect(all.sort()).toEqual(jobs.map((j) => j.id).sort());
    expect(a.length).toBeGreaterThan(0);
    expect(b.length).toBeGreaterThan(0);
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
