import { describe, expect, it } from 'vitest';
import { openPostgres } from '../../src/storage/postgres/database.js';
import { PostgresFlagStore } from '../../src/storage/postgres/flags.js';
import { RecordConflict, RecordNotFound } from '../../src/storage/types.js';
import { requireService } from '../helpers/services.js';
import { useMigratedSchema, usePgSchema } from '../helpers/pg.js';
import { runFlagStoreContract } from './flags.contract.js';

const pg = await requireService('postgres');

describe.skipIf(!pg)('PostgresFlagStore', () => {
  const { schema, admin: adminSql } = useMigratedSchema(pg!);

  // Each store has its own pool, on this file's schema, emptied first (the audit ids restart too).
  runFlagStoreContract('postgres', async () => {
    await adminSql()`TRUNCATE flags, flag_audit RESTART IDENTITY`;
    const sql = openPostgres(pg!, { schema, max: 4 });
    return { store: new PostgresFlagStore(sql), close: () => sql.end({ timeout: 5 }) };
  });
});

describe.skipIf(!pg)('PostgresFlagStore across processes', () => {
  const db = usePgSchema(pg!, 4);
  const open = () => new PostgresFlagStore(db.open());
  const flag = (name: string) => ({ name, description: '', enabled: true, targeting: { percentage: 5 }, effect: { route: 'auto', model: 'm' } });

  it('lets exactly one of two processes create a name, and audits only that one', async () => {
    const [a, b] = [open(), open()];
    const results = await Promise.allSettled([a.create(flag('race'), 'key_a'), b.create(flag('race'), 'key_b')]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(results.find((r) => r.status === 'rejected')).toMatchObject({ reason: expect.any(RecordConflict) });
    expect(await a.audit({ flag: 'race' })).toHaveLength(1);
  });

  it('serializes concurrent updates: every change is audited and each before is the previous after', async () => {
    const [a, b] = [open(), open()];
    await a.create(flag('busy'), 'cli');
    await Promise.all(
      Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).update('busy', { targeting: { percentage: i * 10 } }, `key_${i}`)),
    );
    const trail = (await a.audit({ flag: 'busy' })).reverse(); // oldest first
    expect(trail).toHaveLength(11);
    for (let i = 1; i < trail.length; i++) expect(trail[i]!.before).toEqual(trail[i - 1]!.after);
    expect(await a.get('busy')).toEqual(trail.at(-1)!.after);
  });

  it('lets exactly one of two processes delete a flag', async () => {
    const [a, b] = [open(), open()];
    await a.create(flag('gone'), 'cli');
    const results = await Promise.allSettled([a.delete('gone', 'key_a'), b.delete('gone', 'key_b')]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(results.find((r) => r.status === 'rejected')).toMatchObject({ reason: expect.any(RecordNotFound) });
    expect((await a.audit({ flag: 'gone' })).map((e) => e.action)).toEqual(['delete', 'create']);
  });
});
