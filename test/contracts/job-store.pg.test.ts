import { describe, expect, it } from 'vitest';
import { openPostgres } from '../../src/storage/postgres/database.js';
import { PostgresJobStore } from '../../src/storage/postgres/jobs.js';
import type { JobStore } from '../../src/jobs/types.js';
import { requireService } from '../helpers/services.js';
import { useMigratedSchema } from '../helpers/pg.js';
import { newJob, runJobStoreContract } from './job-store.contract.js';

const pg = await requireService('postgres');

describe.skipIf(!pg)('PostgresJobStore', () => {
  const { schema, admin: adminSql } = useMigratedSchema(pg!);
  const truncate = () => adminSql()`TRUNCATE jobs, webhook_deliveries`;

  // Each store has its own pool, on this file's schema, emptied first. Several connections, so
  // the contract's concurrent enqueues really race.
  runJobStoreContract('postgres', async () => {
    await truncate();
    const sql = openPostgres(pg!, { schema, max: 4 });
    return { store: new PostgresJobStore(sql), close: () => sql.end({ timeout: 5 }) };
  });

  it('never hands one job to two pools claiming at once (two processes)', async () => {
    await truncate();
    const pools = [openPostgres(pg!, { schema, max: 3 }), openPostgres(pg!, { schema, max: 3 })];
    try {
      const [a, b]: JobStore[] = pools.map((sql) => new PostgresJobStore(sql));
      const jobs = Array.from({ length: 200 }, (_, i) => newJob({ tenantId: `ten_${i % 5}`, priority: i % 3 }));
      await a!.enqueueMany(jobs);
      // Every loop's first claim (one job) is made before any goes on: each pool runs some,
      // whichever connects or claims faster; after that they race freely.
      let first = 0;
      let allClaimed!: () => void;
      const claimedOnce = new Promise<void>((resolve) => (allClaimed = resolve));
      const drain = async (store: JobStore, owner: string): Promise<string[]> => {
        const ids: string[] = [];
        // Two loops per pool: four claimers in all.
        const loop = async () => {
          let firstClaim = true;
          for (;;) {
            const claimed = await store.claim({ owner, limit: firstClaim ? 1 : 1 + (ids.length % 4), leaseMs: 60_000, now: Date.now() });
            if (firstClaim) {
              firstClaim = false;
              if (++first === 4) allClaimed();
              await claimedOnce;
            }
            if (claimed.length === 0) return;
            for (const j of claimed) {
              ids.push(j.id);
              expect(await store.complete(j.id, owner, { result: {}, costPico: 1, promptTokens: 1, completionTokens: 1 }, Date.now())).toBe(true);
            }
          }
        };
        await Promise.all([loop(), loop()]);
        return ids;
      };
      const [fromA, fromB] = await Promise.all([drain(a!, 'pool-a'), drain(b!, 'pool-b')]);
      const all = [...fromA, ...fromB];
      expect(new Set(all).size).toBe(all.length);
      expect(all.sort()).toEqual(jobs.map((j) => j.id).sort());
      expect(fromA.length).toBeGreaterThan(0);
      expect(fromB.length).toBeGreaterThan(0);
    } finally {
      await Promise.all(pools.map((sql) => sql.end({ timeout: 5 })));
    }
  });
});
