import { describe, expect, it } from 'vitest';
import { openPostgres } from '../../src/storage/postgres/database.js';
import { PostgresLedger, ROLLUP_LOCK } from '../../src/storage/postgres/ledger.js';
import type { Ledger } from '../../src/storage/types.js';
import { requireService } from '../helpers/services.js';
import { useMigratedSchema } from '../helpers/pg.js';
import { runLedgerContract, usageEvent } from './ledger.contract.js';

const pg = await requireService('postgres');

describe.skipIf(!pg)('PostgresLedger', () => {
  const { schema, admin: adminSql } = useMigratedSchema(pg!);

  // Each ledger has its own pool (close() ends it), on this file's schema, emptied first.
  const open = (): Ledger => new PostgresLedger(openPostgres(pg!, { schema, max: 4 }));
  // TRUNCATE: a DELETE would roll the events up (trigger usage_events_roll_up).
  const empty = async () => adminSql()`TRUNCATE usage_events, usage_rollups`;

  runLedgerContract(
    'postgres',
    async () => {
      await empty();
      return open();
    },
    {
      reopen: async (ledger) => {
        await ledger.close();
        return open();
      },
    },
  );

  describe('roll-ups across processes', () => {
    const T0 = Date.UTC(2025, 0, 1);
    const HOUR = 3_600_000;

    it('lets one process roll up at a time: while another holds the roll-up lock, rollUp skips its turn (0)', async () => {
      await empty();
      const ledger = open();
      try {
        await ledger.append([usageEvent({ ts: T0, costPico: 5 }), usageEvent({ ts: T0 + 1, costPico: 6 })]);
        let release!: () => void;
        const released = new Promise<void>((resolve) => (release = resolve));
        let held!: () => void;
        const holding = new Promise<void>((resolve) => (held = resolve));
        const holder = openPostgres(pg!, { schema, max: 1 }); // another process
        const other = holder.begin(async (tx) => {
          await tx`SELECT pg_advisory_xact_lock(${ROLLUP_LOCK}, hashtext(current_schema()))`;
          held();
          await released;
        });
        await holding;
        expect(await ledger.rollUp!(T0 + HOUR, 100)).toBe(0);
        const [{ n }] = await adminSql()<{ n: number }[]>`SELECT COUNT(*)::int AS n FROM usage_events`;
        expect(n).toBe(2);
        release();
        await other;
        await holder.end();
        expect(await ledger.rollUp!(T0 + HOUR, 100)).toBe(2);
        expect(await ledger.spent({}, 0, T0 + HOUR)).toBe(11);
      } finally {
        await ledger.close();
      }
    });

    it('counts every event once when two processes roll up at the same time', async () => {
      await empty();
      const [a, b] = [open(), open()];
      try {
        const events = Array.from({ length: 600 }, (_, i) =>
          usageEvent({ requestId: `two_${i}`, ts: T0 + (i % 50) * HOUR + i, userId: `u${i % 7}`, costPico: 1_000 + i }),
        );
        await a.append(events);
        const total = events.reduce((s, e) => s + e.costPico, 0);
        const left = async () => (await adminSql()<{ n: number }[]>`SELECT COUNT(*)::int AS n FROM usage_events`)[0]!.n;
        const drain = async (ledger: Ledger) => {
          let rolled = 0;
          for (let i = 0; i < 1_000; i++) {
            const n = await ledger.rollUp!(T0 + 100 * HOUR, 7);
            rolled += n;
            if (n === 0 && (await left()) === 0) break;
          }
          return rolled;
        };
        const [ra, rb] = await Promise.all([drain(a), drain(b)]);
        expect(ra + rb).toBe(600);
        expect(await left()).toBe(0);
        const [sums] = await adminSql()<{ requests: string; cost: string }[]>`SELECT SUM(requests) AS requests, SUM(cost_pico) AS cost FROM usage_rollups`;
        expect(Number(sums!.requests)).toBe(600);
        expect(Number(sums!.cost)).toBe(total);
        expect(await a.spent({}, 0, Number.MAX_SAFE_INTEGER)).toBe(total);
        expect((await b.aggregate({ from: 0, to: T0 + 100 * HOUR, groupBy: ['user'] })).reduce((s, r) => s + r.requests, 0)).toBe(600);
      } finally {
        await a.close();
        await b.close();
      }
    });
  });
});
