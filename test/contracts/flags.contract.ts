/**
 * Behaviour every `FlagStore` adapter must have (src/routing/types.ts). An adapter's test file
 * calls `runFlagStoreContract(name, factory)`; `factory` must return an empty store each time,
 * with a `close` that releases what it opened.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Flag, FlagStore, NewFlag } from '../../src/routing/types.js';
import { RecordConflict, RecordNotFound } from '../../src/storage/types.js';

const T0 = Date.UTC(2025, 0, 1);

export interface FlagStoreUnderTest {
  store: FlagStore;
  close(): Promise<void>;
}

function newFlag(name: string, overrides: Partial<NewFlag> = {}): NewFlag {
  return {
    name,
    description: `flag ${name}`,
    enabled: true,
    targeting: { tenants: ['ten_a'], percentage: 5 },
    effect: { route: 'auto', model: 'sim-large' },
    ...overrides,
  };
}

export function runFlagStoreContract(name: string, factory: () => Promise<FlagStoreUnderTest>): void {
  describe(`FlagStore contract: ${name}`, () => {
    let subject: FlagStoreUnderTest;
    let flags: FlagStore;

    beforeEach(async () => {
      vi.useFakeTimers({ toFake: ['Date'] });
      vi.setSystemTime(T0);
      subject = await factory();
      flags = subject.store;
    });

    afterEach(async () => {
      await subject.close();
      vi.useRealTimers();
    });

    describe('create, get, list', () => {
      it('creates a flag stamped with the clock and the actor, and reads it back', async () => {
        const created = await flags.create(newFlag('gpt-rollout'), 'key_admin');
        const expected: Flag = {
          name: 'gpt-rollout',
          description: 'flag gpt-rollout',
          enabled: true,
          targeting: { tenants: ['ten_a'], percentage: 5 },
          effect: { route: 'auto', model: 'sim-large' },
          createdAt: T0,
          updatedAt: T0,
          updatedBy: 'key_admin',
        };
        expect(created).toEqual(expected);
        expect(await flags.get('gpt-rollout')).toEqual(expected);
        expect(await flags.list()).toEqual([expected]);
      });

      it('round-trips every targeting list and a tier mapping, and keeps a disabled flag', async () => {
        const targeting = { tenants: ['ten_a', 'ten_b'], keys: ['key_1'], users: ['u-1', 'ü'], tiers: ['premium'], percentage: 37.5 };
        const effect = { route: 'auto', tiers: { small: ['sim-small', 'sim-backup'], large: ['sim-large'] }, cacheMode: 'off' as const };
        await flags.create(newFlag('tiers', { enabled: false, targeting, effect, description: '' }), 'cli');
        const got = await flags.get('tiers');
        expect(got).toMatchObject({ enabled: false, targeting, effect, description: '' });
        expect(Object.keys(got!.effect.tiers!)).toEqual(['small', 'large']); // order kept
      });

      it('stores targeting and effect without members that were left out', async () => {
        await flags.create(newFlag('bare', { targeting: {}, effect: { route: 'm1', cacheMode: 'always' } }), 'cli');
        const got = await flags.get('bare');
        expect(got?.targeting).toEqual({});
        expect(got?.effect).toEqual({ route: 'm1', cacheMode: 'always' });
        expect(Object.keys(got!.effect)).toEqual(['route', 'cacheMode']);
      });

      it('returns null for an unknown flag and an empty list when there is none', async () => {
        expect(await flags.get('nope')).toBeNull();
        expect(await flags.list()).toEqual([]);
      });

      it('lists flags by name, byte-wise (upper case before lower case)', async () => {
        for (const n of ['beta', 'alpha.2', 'Alpha', 'alpha', 'alpha-1', 'Z_last']) await flags.create(newFlag(n), 'cli');
        expect((await flags.list()).map((f) => f.name)).toEqual(['Alpha', 'Z_last', 'alpha', 'alpha-1', 'alpha.2', 'beta']);
      });

      it('refuses a second flag with the same name, keeps the first and audits only it', async () => {
        await flags.create(newFlag('dup', { description: 'first' }), 'key_a');
        await expect(flags.create(newFlag('dup', { description: 'second' }), 'key_b')).rejects.toBeInstanceOf(RecordConflict);
        await expect(flags.create(newFlag('dup'), 'key_b')).rejects.toThrow(/dup/);
        expect(await flags.get('dup')).toMatchObject({ description: 'first', updatedBy: 'key_a' });
        expect(await flags.list()).toHaveLength(1);
        expect(await flags.audit()).toHaveLength(1);
      });

      it('hands out copies: changing a returned flag changes nothing stored', async () => {
        const created = await flags.create(newFlag('copy'), 'cli');
        created.targeting.tenants!.push('ten_evil');
        created.effect.model = 'other';
        const got = await flags.get('copy');
        expect(got?.targeting.tenants).toEqual(['ten_a']);
        expect(got?.effect.model).toBe('sim-large');
        got!.targeting.percentage = 99;
        expect((await flags.list())[0]?.targeting.percentage).toBe(5);
      });
    });

    describe('update', () => {
      it('changes the fields given, keeps the others and the creation time, stamps time and actor', async () => {
        await flags.create(newFlag('f'), 'key_a');
        vi.setSystemTime(T0 + 5_000);
        const updated = await flags.update('f', { enabled: false, targeting: { percentage: 25 } }, 'key_b');
        const expected: Flag = {
          name: 'f',
          description: 'flag f',
          enabled: false,
          targeting: { percentage: 25 }, // replaced whole, not merged
          effect: { route: 'auto', model: 'sim-large' },
          createdAt: T0,
          updatedAt: T0 + 5_000,
          updatedBy: 'key_b',
        };
        expect(updated).toEqual(expected);
        expect(await flags.get('f')).toEqual(expected);
      });

      it('leaves a field given as undefined as it is', async () => {
        await flags.create(newFlag('f'), 'cli');
        const updated = await flags.update('f', { description: undefined, effect: { route: 'auto', cacheMode: 'off' } }, 'cli');
        expect(updated.description).toBe('flag f');
        expect(updated.effect).toEqual({ route: 'auto', cacheMode: 'off' });
      });

      it('updates with an empty patch (a touch that is still audited)', async () => {
        await flags.create(newFlag('f'), 'key_a');
        vi.setSystemTime(T0 + 1);
        const updated = await flags.update('f', {}, 'key_b');
        expect(updated).toMatchObject({ enabled: true, updatedAt: T0 + 1, updatedBy: 'key_b' });
        expect((await flags.audit()).map((e) => e.action)).toEqual(['update', 'create']);
      });

      it('throws RecordNotFound for an unknown flag and audits nothing', async () => {
        await expect(flags.update('ghost', { enabled: false }, 'cli')).rejects.toBeInstanceOf(RecordNotFound);
        await expect(flags.update('ghost', { enabled: false }, 'cli')).rejects.toThrow(/ghost/);
        expect(await flags.audit()).toEqual([]);
        expect(await flags.list()).toEqual([]);
      });
    });

    describe('delete', () => {
      it('removes the flag; the name can be used again', async () => {
        await flags.create(newFlag('f'), 'cli');
        await flags.create(newFlag('g'), 'cli');
        await flags.delete('f', 'key_a');
        expect(await flags.get('f')).toBeNull();
        expect((await flags.list()).map((x) => x.name)).toEqual(['g']);
        const again = await flags.create(newFlag('f', { description: 'again' }), 'cli');
        expect(again.description).toBe('again');
      });

      it('throws RecordNotFound for an unknown flag (and for one deleted already) and audits nothing', async () => {
        await expect(flags.delete('ghost', 'cli')).rejects.toBeInstanceOf(RecordNotFound);
        await flags.create(newFlag('f'), 'cli');
        await flags.delete('f', 'cli');
        await expect(flags.delete('f', 'cli')).rejects.toBeInstanceOf(RecordNotFound);
        expect((await flags.audit()).map((e) => e.action)).toEqual(['delete', 'create']);
      });
    });

    describe('audit trail', () => {
      it('records every change with the flag before and after, the actor and the time, newest first', async () => {
        const created = await flags.create(newFlag('f'), 'key_a');
        vi.setSystemTime(T0 + 1_000);
        const updated = await flags.update('f', { targeting: { tenants: ['ten_a'], percentage: 25 } }, 'key_b');
        vi.setSystemTime(T0 + 2_000);
        await flags.delete('f', 'cli');

        const trail = await flags.audit();
        expect(trail).toEqual([
          { id: expect.any(Number), flag: 'f', action: 'delete', before: updated, after: null, actor: 'cli', at: T0 + 2_000 },
          { id: expect.any(Number), flag: 'f', action: 'update', before: created, after: updated, actor: 'key_b', at: T0 + 1_000 },
          { id: expect.any(Number), flag: 'f', action: 'create', before: null, after: created, actor: 'key_a', at: T0 },
        ]);
        const ids = trail.map((e) => e.id);
        expect(ids[0]! > ids[1]! && ids[1]! > ids[2]!).toBe(true);
        expect(trail[1]?.before?.targeting.percentage).toBe(5);
        expect(trail[1]?.after?.targeting.percentage).toBe(25);
      });

      it('filters by flag and keeps the entries of deleted flags', async () => {
        await flags.create(newFlag('a'), 'cli');
        await flags.create(newFlag('b'), 'cli');
        await flags.update('a', { enabled: false }, 'cli');
        await flags.delete('b', 'cli');
        expect((await flags.audit({ flag: 'a' })).map((e) => `${e.flag}:${e.action}`)).toEqual(['a:update', 'a:create']);
        expect((await flags.audit({ flag: 'b' })).map((e) => `${e.flag}:${e.action}`)).toEqual(['b:delete', 'b:create']);
        expect(await flags.audit({ flag: 'nope' })).toEqual([]);
        expect((await flags.audit()).map((e) => `${e.flag}:${e.action}`)).toEqual(['b:delete', 'a:update', 'b:create', 'a:create']);
      });

      it('pages with limit and beforeId, newest first, without gaps or repeats', async () => {
        await flags.create(newFlag('p'), 'cli');
        for (let i = 1; i <= 11; i++) await flags.update('p', { targeting: { percentage: i } }, 'cli');
        await flags.create(newFlag('other'), 'cli');

        const all = await flags.audit({ flag: 'p' });
        expect(all).toHaveLength(12);
        const seen: number[] = [];
        let beforeId: number | undefined;
        for (;;) {
          const page = await flags.audit({ flag: 'p', limit: 5, ...(beforeId !== undefined ? { beforeId } : {}) });
          if (page.length === 0) break;
          expect(page.length).toBeLessThanOrEqual(5);
          seen.push(...page.map((e) => e.id));
          beforeId = page.at(-1)!.id;
        }
        expect(seen).toEqual(all.map((e) => e.id));
        expect(all.map((e) => e.after?.targeting.percentage ?? 5)).toEqual([11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 5]);

        expect((await flags.audit({ limit: 1 })).map((e) => e.flag)).toEqual(['other']);
        expect(await flags.audit({ limit: 0 })).toEqual([]);
        const after = await flags.audit({ beforeId: all[0]!.id });
        expect(after.map((e) => e.id)).toEqual(all.slice(1).map((e) => e.id));
      });

      it('returns at most 100 entries when no limit is given', async () => {
        await flags.create(newFlag('busy'), 'cli');
        for (let i = 0; i < 105; i++) await flags.update('busy', { enabled: i % 2 === 0 }, 'cli');
        expect(await flags.audit()).toHaveLength(100);
        expect(await flags.audit({ limit: 200 })).toHaveLength(106);
      });
    });
  });
}
