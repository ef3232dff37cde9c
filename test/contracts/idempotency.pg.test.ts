import { describe, expect, it, vi } from 'vitest';
import { openPostgres } from '../../src/storage/postgres/database.js';
import { PostgresIdempotencyStore } from '../../src/storage/postgres/idempotency.js';
import { requireService } from '../helpers/services.js';
import { useMigratedSchema, usePgSchema } from '../helpers/pg.js';
import { runIdempotencyContract, storedResponse } from './idempotency.contract.js';

const pg = await requireService('postgres');
const DAY = 86_400_000;

describe.skipIf(!pg)('PostgresIdempotencyStore', () => {
  const { schema, admin: adminSql } = useMigratedSchema(pg!);

  // Each store has its own pool (close() ends it), on this file's schema, emptied first.
  runIdempotencyContract('postgres', async () => {
    await adminSql()`DELETE FROM idempotency_keys`;
    return new PostgresIdempotencyStore(openPostgres(pg!, { schema, max: 4 }));
  });
});

describe.skipIf(!pg)('PostgresIdempotencyStore across processes', () => {
  const db = usePgSchema(pg!, 4);
  const open = () => new PostgresIdempotencyStore(db.open());

  it('gives a key to exactly one of three processes racing for it, fresh or expired', async () => {
    const stores = [open(), open(), open()];
    for (const key of ['race-1', 'race-2', 'race-3']) {
      const results = await Promise.all(stores.flatMap((s) => [s.begin('scope', key, 'h', DAY), s.begin('scope', key, 'h', DAY)]));
      expect(results.filter((r) => r.state === 'new')).toHaveLength(1);
    }
    // An expired lease: one process takes it over, the others see it running. (The stores judge
    // leases by the gateway's clock, Date.now(): moved here past the lease's end.)
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      await stores[0]!.begin('scope', 'lease', 'h', DAY, 1_000);
      vi.setSystemTime(Date.now() + 1_000);
      const takeovers = await Promise.all(stores.map((s) => s.begin('scope', 'lease', 'h', DAY, 60_000)));
      expect(takeovers.map((r) => r.state).sort()).toEqual(['in_progress', 'in_progress', 'new']);
    } finally {
      vi.useRealTimers();
    }
  });

  it('replays in one process what another completed', async () => {
    const [a, b] = [open(), open()];
    await a.begin('scope', 'shared', 'h', DAY);
    await a.complete('scope', 'shared', storedResponse({ body: Buffer.from([0, 1, 2, 255]) }));
    const r = await b.begin('scope', 'shared', 'h', DAY);
    expect(r.state === 'done' && Buffer.from(r.response.body)).toEqual(Buffer.from([0, 1, 2, 255]));
  });
});
