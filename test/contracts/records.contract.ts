/**
 * Behaviour every `Records` adapter must have. An adapter's test file calls
 * `runRecordsContract(name, factory)`; `factory` must return an empty store each time.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { RecordConflict, RecordNotFound, type NewApiKey, type PolicyOverride, type Records } from '../../src/storage/types.js';

const T0 = Date.UTC(2025, 0, 1);

let hashCounter = 0;
function newKey(tenantId: string, overrides: Partial<NewApiKey> = {}): NewApiKey {
  hashCounter++;
  return {
    tenantId,
    name: `key ${hashCounter}`,
    kind: 'api',
    prefix: `tg-${String(hashCounter).padStart(4, '0')}`,
    hash: hashCounter.toString(16).padStart(64, 'a'),
    tier: 'standard',
    allowedModels: null,
    userId: null,
    expiresAt: null,
    ...overrides,
  };
}

export function runRecordsContract(name: string, factory: () => Promise<Records>): void {
  describe(`Records contract: ${name}`, () => {
    let records: Records;

    beforeEach(async () => {
      vi.useFakeTimers({ toFake: ['Date'] });
      vi.setSystemTime(T0);
      records = await factory();
    });

    afterEach(async () => {
      await records.close();
      vi.useRealTimers();
    });

    describe('tenants', () => {
      it('creates a tenant with a generated id, the default tier and empty metadata', async () => {
        const tenant = await records.createTenant({ name: 'Acme' });
        expect(tenant).toEqual({ id: expect.stringMatching(/^ten_[0-9A-Za-z]{16}$/), name: 'Acme', tier: 'standard', createdAt: T0, metadata: {}, policy: null });
        expect(await records.getTenant(tenant.id)).toEqual(tenant);
      });

      it('generates a different id for every tenant', async () => {
        const a = await records.createTenant({ name: 'A' });
        const b = await records.createTenant({ name: 'B' });
        expect(a.id).not.toBe(b.id);
      });

      it('keeps a given id, tier and metadata', async () => {
        const tenant = await records.createTenant({ id: 'ten_acme', name: 'Acme', tier: 'premium', metadata: { plan: 'pro', seats: 12 } });
        expect(await records.getTenant('ten_acme')).toEqual({ id: 'ten_acme', name: 'Acme', tier: 'premium', createdAt: T0, metadata: { plan: 'pro', seats: 12 }, policy: null });
        expect(tenant.id).toBe('ten_acme');
      });

      it('round-trips nested metadata', async () => {
        const metadata = { owner: { email: 'ops@acme.test', teams: ['a', 'b'] }, flag: true, score: 1.5, nothing: null };
        await records.createTenant({ id: 'ten_meta', name: 'Meta', metadata });
        expect((await records.getTenant('ten_meta'))?.metadata).toEqual(metadata);
      });

      it('refuses a second tenant with the same id and keeps the first', async () => {
        await records.createTenant({ id: 'ten_dup', name: 'First' });
        await expect(records.createTenant({ id: 'ten_dup', name: 'Second' })).rejects.toBeInstanceOf(RecordConflict);
        expect((await records.getTenant('ten_dup'))?.name).toBe('First');
        expect(await records.listTenants()).toHaveLength(1);
      });

      it('returns null for an unknown tenant', async () => {
        expect(await records.getTenant('ten_nope')).toBeNull();
      });

      it('lists tenants by creation time, then id', async () => {
        vi.setSystemTime(T0 + 2000);
        await records.createTenant({ id: 'ten_late', name: 'Late' });
        vi.setSystemTime(T0);
        await records.createTenant({ id: 'ten_b', name: 'B' });
        await records.createTenant({ id: 'ten_a', name: 'A' });
        vi.setSystemTime(T0 + 1000);
        await records.createTenant({ id: 'ten_mid', name: 'Mid' });
        expect((await records.listTenants()).map((t) => t.id)).toEqual(['ten_a', 'ten_b', 'ten_mid', 'ten_late']);
      });

      it('lists nothing when empty', async () => {
        expect(await records.listTenants()).toEqual([]);
      });

      it('updates only the fields given and keeps id and createdAt', async () => {
        await records.createTenant({ id: 'ten_u', name: 'Old', tier: 'free', metadata: { a: 1 } });
        vi.setSystemTime(T0 + 5000);
        const renamed = await records.updateTenant('ten_u', { name: 'New' });
        expect(renamed).toEqual({ id: 'ten_u', name: 'New', tier: 'free', createdAt: T0, metadata: { a: 1 }, policy: null });
        const retiered = await records.updateTenant('ten_u', { tier: 'premium', name: undefined });
        expect(retiered).toMatchObject({ name: 'New', tier: 'premium' });
        expect(await records.getTenant('ten_u')).toEqual(retiered);
      });

      it('replaces metadata as a whole', async () => {
        await records.createTenant({ id: 'ten_m', name: 'M', metadata: { a: 1, b: 2 } });
        const updated = await records.updateTenant('ten_m', { metadata: { c: 3 } });
        expect(updated.metadata).toEqual({ c: 3 });
        expect((await records.getTenant('ten_m'))?.metadata).toEqual({ c: 3 });
      });

      it('ignores fields an update may not change', async () => {
        await records.createTenant({ id: 'ten_x', name: 'X' });
        const sneaky = { name: 'Y', id: 'ten_other', createdAt: 1 } as unknown as { name: string };
        const updated = await records.updateTenant('ten_x', sneaky);
        expect(updated).toMatchObject({ id: 'ten_x', name: 'Y', createdAt: T0 });
        expect(await records.getTenant('ten_other')).toBeNull();
      });

      it('fails to update an unknown tenant with RecordNotFound', async () => {
        const err = await records.updateTenant('ten_nope', { name: 'x' }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(RecordNotFound);
        expect(err).toMatchObject({ entity: 'tenant', id: 'ten_nope' });
      });

      it('deletes a tenant', async () => {
        await records.createTenant({ id: 'ten_gone', name: 'Gone' });
        await records.createTenant({ id: 'ten_stays', name: 'Stays' });
        await records.deleteTenant('ten_gone');
        expect(await records.getTenant('ten_gone')).toBeNull();
        expect((await records.listTenants()).map((t) => t.id)).toEqual(['ten_stays']);
      });

      it('fails to delete an unknown tenant with RecordNotFound', async () => {
        await expect(records.deleteTenant('ten_nope')).rejects.toBeInstanceOf(RecordNotFound);
      });

      it('revokes, not deletes, the keys of a deleted tenant; other tenants keep theirs', async () => {
        await records.createTenant({ id: 'ten_gone', name: 'Gone' });
        await records.createTenant({ id: 'ten_stays', name: 'Stays' });
        const earlyRevoked = await records.createKey(newKey('ten_gone'));
        const live = await records.createKey(newKey('ten_gone'));
        const other = await records.createKey(newKey('ten_stays'));
        vi.setSystemTime(T0 + 1000);
        await records.revokeKey(earlyRevoked.id);
        vi.setSystemTime(T0 + 2000);
        await records.deleteTenant('ten_gone');

        expect(await records.getKey(live.id)).toMatchObject({ tenantId: 'ten_gone', revokedAt: T0 + 2000 });
        expect(await records.getKey(earlyRevoked.id)).toMatchObject({ revokedAt: T0 + 1000 });
        expect(await records.getKeyByHash(live.hash)).toMatchObject({ id: live.id, revokedAt: T0 + 2000 });
        expect(await records.listKeys({ tenantId: 'ten_gone' })).toEqual([]);
        expect((await records.listKeys({ tenantId: 'ten_gone', includeRevoked: true })).map((k) => k.id).sort()).toEqual(
          [earlyRevoked.id, live.id].sort(),
        );
        expect(await records.getKey(other.id)).toMatchObject({ revokedAt: null });
      });

      it('refuses new keys for a deleted tenant', async () => {
        await records.createTenant({ id: 'ten_gone', name: 'Gone' });
        await records.deleteTenant('ten_gone');
        await expect(records.createKey(newKey('ten_gone'))).rejects.toBeInstanceOf(RecordNotFound);
      });

      it('keeps a policy given at creation, replaces it on update, and clears it with null', async () => {
        const policy: PolicyOverride = {
          limits: { tenant: { tokensPerMinute: 5000, requestsPerMinute: null, burst: 2 }, user: { requestsPerMinute: 10 } },
          budgets: { key: { dailyUsd: 1.5, monthlyUsd: null } },
        };
        await records.createTenant({ id: 'ten_p', name: 'P', policy });
        expect((await records.getTenant('ten_p'))?.policy).toEqual(policy);

        const next: PolicyOverride = { budgets: { tenant: { lifetimeUsd: 100 } } };
        expect((await records.updateTenant('ten_p', { policy: next })).policy).toEqual(next);
        expect((await records.updateTenant('ten_p', { name: 'Renamed', policy: undefined })).policy).toEqual(next);
        expect((await records.listTenants())[0]?.policy).toEqual(next);

        const cleared = await records.updateTenant('ten_p', { policy: null });
        expect(cleared).toMatchObject({ name: 'Renamed', policy: null });
        expect((await records.getTenant('ten_p'))?.policy).toBeNull();
      });

      it('round-trips an empty policy as {} (distinct from none)', async () => {
        await records.createTenant({ id: 'ten_e', name: 'E', policy: {} });
        expect((await records.getTenant('ten_e'))?.policy).toEqual({});
      });

      it('returns copies: changing a returned tenant changes nothing stored', async () => {
        const tenant = await records.createTenant({ id: 'ten_c', name: 'C', metadata: { list: [1] } });
        tenant.name = 'mutated';
        (tenant.metadata.list as number[]).push(2);
        const fetched = await records.getTenant('ten_c');
        expect(fetched).toMatchObject({ name: 'C', metadata: { list: [1] } });
        fetched!.metadata.extra = true;
        expect((await records.listTenants())[0]?.metadata).toEqual({ list: [1] });
      });
    });

    describe('api keys', () => {
      beforeEach(async () => {
        await records.createTenant({ id: 'ten_a', name: 'A' });
        await records.createTenant({ id: 'ten_b', name: 'B' });
      });

      it('creates a key with a generated id and returns every field', async () => {
        const input = newKey('ten_a', { name: 'prod', kind: 'admin', prefix: 'tg-abcd', tier: 'premium', userId: 'user-7' });
        const key = await records.createKey(input);
        expect(key).toEqual({
          id: expect.stringMatching(/^key_[0-9A-Za-z]{16}$/),
          tenantId: 'ten_a',
          name: 'prod',
          kind: 'admin',
          prefix: 'tg-abcd',
          hash: input.hash,
          tier: 'premium',
          allowedModels: null,
          userId: 'user-7',
          createdAt: T0,
          expiresAt: null,
          revokedAt: null,
          lastUsedAt: null,
          policy: null,
        });
        expect(await records.getKey(key.id)).toEqual(key);
      });

      it('keeps a given key id', async () => {
        const key = await records.createKey(newKey('ten_a', { id: 'key_fixed' }));
        expect(key.id).toBe('key_fixed');
        expect((await records.getKey('key_fixed'))?.hash).toBe(key.hash);
      });

      it('refuses a key for an unknown tenant with RecordNotFound naming the tenant', async () => {
        const err = await records.createKey(newKey('ten_nope')).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(RecordNotFound);
        expect(err).toMatchObject({ entity: 'tenant', id: 'ten_nope' });
        expect(await records.listKeys({ includeRevoked: true })).toEqual([]);
      });

      it('refuses a second key with the same hash or the same id', async () => {
        const first = await records.createKey(newKey('ten_a', { id: 'key_one' }));
        await expect(records.createKey(newKey('ten_b', { hash: first.hash }))).rejects.toBeInstanceOf(RecordConflict);
        await expect(records.createKey(newKey('ten_b', { id: 'key_one' }))).rejects.toBeInstanceOf(RecordConflict);
        expect(await records.listKeys()).toEqual([first]);
      });

      it('returns null for an unknown key id or hash', async () => {
        expect(await records.getKey('key_nope')).toBeNull();
        expect(await records.getKeyByHash('f'.repeat(64))).toBeNull();
      });

      it('finds a key by the hash of its secret', async () => {
        const a = await records.createKey(newKey('ten_a'));
        const b = await records.createKey(newKey('ten_b'));
        expect(await records.getKeyByHash(a.hash)).toEqual(a);
        expect(await records.getKeyByHash(b.hash)).toEqual(b);
      });

      it('still finds a revoked key by hash, marked revoked, so auth can say why it fails', async () => {
        const key = await records.createKey(newKey('ten_a'));
        vi.setSystemTime(T0 + 10);
        await records.revokeKey(key.id);
        expect(await records.getKeyByHash(key.hash)).toMatchObject({ id: key.id, revokedAt: T0 + 10 });
      });

      it('round-trips allowedModels: null, empty and a list stay distinct', async () => {
        const all = await records.createKey(newKey('ten_a', { allowedModels: null }));
        const none = await records.createKey(newKey('ten_a', { allowedModels: [] }));
        const some = await records.createKey(newKey('ten_a', { allowedModels: ['gpt-4o-mini', 'claude-haiku'] }));
        expect((await records.getKey(all.id))?.allowedModels).toBeNull();
        expect((await records.getKey(none.id))?.allowedModels).toEqual([]);
        expect((await records.getKey(some.id))?.allowedModels).toEqual(['gpt-4o-mini', 'claude-haiku']);
      });

      it('stores the expiry time', async () => {
        const expiring = await records.createKey(newKey('ten_a', { expiresAt: T0 + 86_400_000 }));
        const forever = await records.createKey(newKey('ten_a', { expiresAt: null }));
        expect((await records.getKey(expiring.id))?.expiresAt).toBe(T0 + 86_400_000);
        expect((await records.getKey(forever.id))?.expiresAt).toBeNull();
      });

      it('lists keys by creation time then id, optionally of one tenant', async () => {
        vi.setSystemTime(T0 + 100);
        const late = await records.createKey(newKey('ten_a', { id: 'key_late' }));
        vi.setSystemTime(T0);
        const b = await records.createKey(newKey('ten_b', { id: 'key_b' }));
        const a = await records.createKey(newKey('ten_a', { id: 'key_a' }));
        expect((await records.listKeys()).map((k) => k.id)).toEqual([a.id, b.id, late.id]);
        expect((await records.listKeys({ tenantId: 'ten_a' })).map((k) => k.id)).toEqual([a.id, late.id]);
        expect(await records.listKeys({ tenantId: 'ten_b' })).toEqual([b]);
        expect(await records.listKeys({ tenantId: 'ten_nope' })).toEqual([]);
      });

      it('leaves revoked keys out of listings unless asked for them', async () => {
        const live = await records.createKey(newKey('ten_a', { id: 'key_live' }));
        const revoked = await records.createKey(newKey('ten_a', { id: 'key_revoked' }));
        await records.revokeKey(revoked.id);
        expect((await records.listKeys()).map((k) => k.id)).toEqual([live.id]);
        expect((await records.listKeys({ tenantId: 'ten_a' })).map((k) => k.id)).toEqual([live.id]);
        expect((await records.listKeys({ includeRevoked: true })).map((k) => k.id)).toEqual([live.id, revoked.id]);
        expect((await records.listKeys({ tenantId: 'ten_a', includeRevoked: true })).map((k) => k.id)).toEqual([live.id, revoked.id]);
      });

      it('updates only the fields given; identity, secret and history stay', async () => {
        const key = await records.createKey(newKey('ten_a', { allowedModels: ['m1'], userId: 'u1', expiresAt: T0 + 1 }));
        vi.setSystemTime(T0 + 500);
        const renamed = await records.updateKey(key.id, { name: 'renamed' });
        expect(renamed).toEqual({ ...key, name: 'renamed' });

        const changed = await records.updateKey(key.id, {
          tier: 'premium',
          allowedModels: ['m2', 'm3'],
          userId: 'u2',
          expiresAt: T0 + 999,
          name: undefined,
        });
        expect(changed).toEqual({ ...key, name: 'renamed', tier: 'premium', allowedModels: ['m2', 'm3'], userId: 'u2', expiresAt: T0 + 999 });
        expect(await records.getKey(key.id)).toEqual(changed);
        expect(await records.getKeyByHash(key.hash)).toEqual(changed);
      });

      it('clears nullable fields when an update sets them to null, and [] stays []', async () => {
        const key = await records.createKey(newKey('ten_a', { allowedModels: ['m1'], userId: 'u1', expiresAt: T0 + 1 }));
        const cleared = await records.updateKey(key.id, { allowedModels: null, userId: null, expiresAt: null });
        expect(cleared).toMatchObject({ allowedModels: null, userId: null, expiresAt: null });
        expect(await records.getKey(key.id)).toMatchObject({ allowedModels: null, userId: null, expiresAt: null });
        await records.updateKey(key.id, { allowedModels: [] });
        expect((await records.getKey(key.id))?.allowedModels).toEqual([]);
      });

      it('ignores fields an update may not change', async () => {
        const key = await records.createKey(newKey('ten_a'));
        const sneaky = { name: 'n', hash: 'b'.repeat(64), tenantId: 'ten_b', kind: 'admin', revokedAt: 1 } as unknown as { name: string };
        const updated = await records.updateKey(key.id, sneaky);
        expect(updated).toEqual({ ...key, name: 'n' });
        expect(await records.getKeyByHash('b'.repeat(64))).toBeNull();
      });

      it('fails to update or revoke an unknown key with RecordNotFound', async () => {
        await expect(records.updateKey('key_nope', { name: 'x' })).rejects.toBeInstanceOf(RecordNotFound);
        await expect(records.revokeKey('key_nope')).rejects.toBeInstanceOf(RecordNotFound);
        const err = await records.revokeKey('key_nope').catch((e: unknown) => e);
        expect(err).toMatchObject({ id: 'key_nope' });
      });

      it('revokes idempotently, keeping the first revocation time', async () => {
        const key = await records.createKey(newKey('ten_a'));
        vi.setSystemTime(T0 + 1000);
        const first = await records.revokeKey(key.id);
        expect(first).toEqual({ ...key, revokedAt: T0 + 1000 });
        vi.setSystemTime(T0 + 9000);
        const second = await records.revokeKey(key.id);
        expect(second).toEqual(first);
        expect(await records.getKey(key.id)).toEqual(first);
      });

      it('records the last use and never moves it backwards', async () => {
        const key = await records.createKey(newKey('ten_a'));
        await records.touchKey(key.id, T0 + 50);
        expect((await records.getKey(key.id))?.lastUsedAt).toBe(T0 + 50);
        await records.touchKey(key.id, T0 + 20);
        expect((await records.getKey(key.id))?.lastUsedAt).toBe(T0 + 50);
        await records.touchKey(key.id, T0 + 70);
        expect((await records.getKey(key.id))?.lastUsedAt).toBe(T0 + 70);
      });

      it('ignores a touch of an unknown key (it may have gone since the request)', async () => {
        await expect(records.touchKey('key_nope', T0)).resolves.toBeUndefined();
      });

      it('counts keys that are not revoked, optionally by kind', async () => {
        expect(await records.countKeys()).toBe(0);
        expect(await records.countKeys({ kind: 'admin' })).toBe(0);
        await records.createKey(newKey('ten_a', { kind: 'admin' }));
        await records.createKey(newKey('ten_a', { kind: 'api' }));
        await records.createKey(newKey('ten_b', { kind: 'api', expiresAt: T0 - 1 }));
        const revoked = await records.createKey(newKey('ten_b', { kind: 'admin' }));
        await records.revokeKey(revoked.id);
        expect(await records.countKeys()).toBe(3);
        expect(await records.countKeys({ kind: 'admin' })).toBe(1);
        expect(await records.countKeys({ kind: 'api' })).toBe(2);
      });

      it('stores a key policy, updates it with the other fields, and clears it with null', async () => {
        const policy: PolicyOverride = { limits: { key: { tokensPerMinute: 100 } }, budgets: { user: { dailyUsd: null } } };
        const key = await records.createKey(newKey('ten_a', { policy }));
        expect(key.policy).toEqual(policy);
        expect((await records.getKeyByHash(key.hash))?.policy).toEqual(policy);

        const next: PolicyOverride = { budgets: { key: { monthlyUsd: 20 } } };
        const updated = await records.updateKey(key.id, { policy: next, name: 'n2' });
        expect(updated).toEqual({ ...key, name: 'n2', policy: next });
        expect((await records.updateKey(key.id, { name: 'n3' })).policy).toEqual(next);
        expect((await records.listKeys({ tenantId: 'ten_a' }))[0]?.policy).toEqual(next);

        await records.updateKey(key.id, { policy: null });
        expect((await records.getKey(key.id))?.policy).toBeNull();
      });

      it('returns copies of policies: changing a returned one changes nothing stored', async () => {
        const key = await records.createKey(newKey('ten_a', { policy: { limits: { key: { requestsPerMinute: 5 } } } }));
        key.policy!.limits!.key!.requestsPerMinute = 999;
        expect((await records.getKey(key.id))?.policy).toEqual({ limits: { key: { requestsPerMinute: 5 } } });
      });

      it('returns copies: changing a returned key changes nothing stored', async () => {
        const key = await records.createKey(newKey('ten_a', { allowedModels: ['m1'] }));
        key.allowedModels!.push('m2');
        key.name = 'mutated';
        const fetched = await records.getKey(key.id);
        expect(fetched).toMatchObject({ allowedModels: ['m1'] });
        fetched!.allowedModels!.push('m3');
        expect((await records.getKeyByHash(key.hash))?.allowedModels).toEqual(['m1']);
        expect((await records.listKeys())[0]?.allowedModels).toEqual(['m1']);
      });
    });

    describe('kill switches', () => {
      it('creates a switch with a generated id, the time and every field', async () => {
        const sw = await records.createKillSwitch({ scope: 'tenant', target: 'ten_a', reason: 'runaway loop', createdBy: 'key_admin' });
        expect(sw).toEqual({
          id: expect.stringMatching(/^ks_[0-9A-Za-z]{16}$/),
          scope: 'tenant',
          target: 'ten_a',
          reason: 'runaway loop',
          createdBy: 'key_admin',
          createdAt: T0,
        });
        expect(await records.listKillSwitches()).toEqual([sw]);
      });

      it('stores createdBy as null when not given, and a global switch with an empty target', async () => {
        const sw = await records.createKillSwitch({ scope: 'global', target: '', reason: 'incident 42' });
        expect(sw).toMatchObject({ scope: 'global', target: '', createdBy: null });
        expect(await records.listKillSwitches()).toEqual([sw]);
      });

      it('lists nothing when empty', async () => {
        expect(await records.listKillSwitches()).toEqual([]);
      });

      it('lists switches by creation time, then id', async () => {
        vi.setSystemTime(T0 + 2000);
        const late = await records.createKillSwitch({ scope: 'model', target: 'm1', reason: 'r' });
        vi.setSystemTime(T0);
        const a = await records.createKillSwitch({ scope: 'key', target: 'key_1', reason: 'r' });
        const b = await records.createKillSwitch({ scope: 'key', target: 'key_2', reason: 'r' });
        vi.setSystemTime(T0 + 1000);
        const mid = await records.createKillSwitch({ scope: 'provider', target: 'openai', reason: 'r' });
        const sameTime = [a, b].sort((x, y) => (x.id < y.id ? -1 : 1));
        expect((await records.listKillSwitches()).map((s) => s.id)).toEqual([...sameTime.map((s) => s.id), mid.id, late.id]);
      });

      it('refuses a second switch on the same scope and target, keeping the first', async () => {
        const first = await records.createKillSwitch({ scope: 'model', target: 'gpt-4o', reason: 'first' });
        await expect(records.createKillSwitch({ scope: 'model', target: 'gpt-4o', reason: 'second' })).rejects.toBeInstanceOf(RecordConflict);
        await records.createKillSwitch({ scope: 'global', target: '', reason: 'g' });
        await expect(records.createKillSwitch({ scope: 'global', target: '', reason: 'g2' })).rejects.toBeInstanceOf(RecordConflict);
        // The same target in another scope is another switch.
        await records.createKillSwitch({ scope: 'provider', target: 'gpt-4o', reason: 'other scope' });
        const list = await records.listKillSwitches();
        expect(list).toHaveLength(3);
        expect(list.find((s) => s.scope === 'model')).toEqual(first);
      });

      it('deletes a switch, after which the same scope and target can be switched again', async () => {
        const sw = await records.createKillSwitch({ scope: 'key', target: 'key_x', reason: 'leaked' });
        const other = await records.createKillSwitch({ scope: 'key', target: 'key_y', reason: 'leaked' });
        await records.deleteKillSwitch(sw.id);
        expect(await records.listKillSwitches()).toEqual([other]);
        const again = await records.createKillSwitch({ scope: 'key', target: 'key_x', reason: 'again' });
        expect(again.id).not.toBe(sw.id);
      });

      it('fails to delete an unknown switch with RecordNotFound', async () => {
        const err = await records.deleteKillSwitch('ks_nope').catch((e: unknown) => e);
        expect(err).toBeInstanceOf(RecordNotFound);
        expect(err).toMatchObject({ entity: 'kill switch', id: 'ks_nope' });
        const sw = await records.createKillSwitch({ scope: 'global', target: '', reason: 'x' });
        await records.deleteKillSwitch(sw.id);
        await expect(records.deleteKillSwitch(sw.id)).rejects.toBeInstanceOf(RecordNotFound);
      });

      it('returns copies: changing a returned switch changes nothing stored', async () => {
        const sw = await records.createKillSwitch({ scope: 'tenant', target: 'ten_a', reason: 'r' });
        sw.reason = 'mutated';
        const [listed] = await records.listKillSwitches();
        expect(listed?.reason).toBe('r');
        listed!.target = 'ten_b';
        expect((await records.listKillSwitches())[0]?.target).toBe('ten_a');
      });
    });
  });
}
