import { describe, expect, it, vi } from 'vitest';
import { MemoryRecords } from '../storage/memory/records.js';
import { Authenticator } from './authenticator.js';
import { generateKey } from './keys.js';

describe('Authenticator.authenticateKeyId (job runs)', () => {
  async function setup() {
    const records = new MemoryRecords();
    const tenant = await records.createTenant({ name: 't' });
    const gen = generateKey('api');
    const key = await records.createKey({
      tenantId: tenant.id, name: 'k', kind: 'api', prefix: gen.prefix, hash: gen.hash, tier: 'standard',
      allowedModels: null, userId: 'u1', expiresAt: null,
    });
    let now = 1_000_000;
    const auth = new Authenticator({ records, ttlMs: 5_000, tierModels: {}, now: () => now });
    return { records, key, secret: gen.secret, auth, advance: (ms: number) => (now += ms) };
  }

  it('gives the same identity as the secret would', async () => {
    const { key, secret, auth } = await setup();
    expect(await auth.authenticateKeyId(key.id)).toEqual(await auth.authenticate(secret));
  });

  it('refuses a key revoked after the job was submitted (once the cache entry is stale or invalidated)', async () => {
    const { records, key, auth } = await setup();
    await auth.authenticateKeyId(key.id);
    await records.revokeKey(key.id);
    auth.invalidate(key.id);
    await expect(auth.authenticateKeyId(key.id)).rejects.toMatchObject({ code: 'revoked_api_key' });
  });

  it('refuses an unknown key id', async () => {
    const { auth } = await setup();
    await expect(auth.authenticateKeyId('key_nope')).rejects.toMatchObject({ code: 'invalid_api_key' });
  });
});

/**
 * Storage that is slow or down: the authenticator answers known keys from their last known state
 * at once and refreshes them in the background; reads a request waits for have a deadline.
 */
describe('Authenticator with slow or failing storage (stale-while-revalidate)', () => {
  type Mode = 'ok' | 'hang' | 'fail';
  async function setup(opts: { ttlMs?: number; maxStaleMs?: number; lookupTimeoutMs?: number } = {}) {
    const records = new MemoryRecords();
    let mode: Mode = 'ok';
    let reads = 0;
    const held: Array<() => void> = [];
    // getKeyByHash / getTenant / getKey obey the mode: 'hang' holds the read until release().
    const gate = async <T>(read: () => Promise<T>): Promise<T> => {
      reads++;
      if (mode === 'fail') throw new Error('connect ECONNREFUSED 127.0.0.1:5432');
      if (mode === 'hang') await new Promise<void>((resolve) => held.push(resolve));
      return read();
    };
    const faulty = Object.create(records) as MemoryRecords;
    faulty.getKeyByHash = (hash) => gate(() => records.getKeyByHash(hash));
    faulty.getTenant = (id) => gate(() => records.getTenant(id));
    faulty.getKey = (id) => gate(() => records.getKey(id));
    const tenant = await records.createTenant({ name: 't' });
    const mkKey = async () => {
      const gen = generateKey('api');
      const key = await records.createKey({
        tenantId: tenant.id, name: 'k', kind: 'api', prefix: gen.prefix, hash: gen.hash, tier: 'standard',
        allowedModels: null, userId: null, expiresAt: null,
      });
      return { key, secret: gen.secret };
    };
    let now = 1_000_000;
    const auth = new Authenticator({
      records: faulty,
      ttlMs: opts.ttlMs ?? 5_000,
      maxStaleMs: opts.maxStaleMs ?? 60_000,
      lookupTimeoutMs: opts.lookupTimeoutMs ?? 20,
      tierModels: {},
      now: () => now,
    });
    return {
      records, auth, mkKey,
      setMode: (m: Mode) => (mode = m),
      reads: () => reads,
      release: () => held.splice(0).forEach((r) => r()),
      advance: (ms: number) => (now += ms),
    };
  }

  it('answers a known key at once from its last state while storage hangs, and refreshes it in the background once', async () => {
    const t = await setup();
    const { key, secret } = await t.mkKey();
    await t.auth.authenticate(secret);
    t.advance(6_000); // past the TTL
    t.setMode('hang');
    const before = t.reads();
    // Each resolves although the storage read it started never answers.
    expect((await t.auth.authenticate(secret)).keyId).toBe(key.id);
    expect((await t.auth.authenticate(secret)).keyId).toBe(key.id);
    expect(t.reads() - before).toBe(1); // one background read, shared
    // The refresh sees a revocation once storage answers.
    await t.records.revokeKey(key.id);
    t.setMode('ok');
    t.release();
    await vi.waitFor(() => expect(t.auth.authenticate(secret)).rejects.toMatchObject({ code: 'revoked_api_key' }), { timeout: 5_000, interval: 5 });
  });

  it('gives an unknown key 503 storage_unavailable at the deadline instead of waiting for storage', async () => {
    const t = await setup();
    const { secret } = await t.mkKey();
    t.setMode('hang');
    await expect(t.auth.authenticate(secret)).rejects.toMatchObject({ code: 'storage_unavailable', message: expect.stringContaining('did not answer within 20 ms') });
    // While that read hangs, other unknown keys are refused at once (no pile-up of reads).
    const other = await t.mkKey();
    const before = t.reads();
    await expect(t.auth.authenticate(other.secret)).rejects.toMatchObject({ code: 'storage_unavailable' });
    expect(t.reads()).toBe(before);
    // The late answer is kept: once storage answers, the first key works without a new read.
    t.setMode('ok');
    t.release();
    await vi.waitFor(async () => expect((await t.auth.authenticate(secret)).tenantId).toBeTruthy(), { timeout: 5_000, interval: 5 });
    expect((await t.auth.authenticate(other.secret)).keyId).toBe(other.key.id);
  });

  it('keeps a key whose refresh fails on its last state, then refuses it past maxStaleMs', async () => {
    const t = await setup({ maxStaleMs: 60_000 });
    const { key, secret } = await t.mkKey();
    await t.auth.authenticate(secret);
    t.setMode('fail');
    t.advance(30_000);
    expect((await t.auth.authenticate(secret)).keyId).toBe(key.id); // starts a refresh, which fails
    await vi.waitFor(() => expect(t.reads()).toBeGreaterThan(2), { timeout: 5_000, interval: 5 });
    t.advance(29_000); // 59 s since it was read: still served
    expect((await t.auth.authenticate(secret)).keyId).toBe(key.id);
    t.advance(2_000); // 61 s: past maxStaleMs, a read is needed and fails
    await expect(t.auth.authenticate(secret)).rejects.toMatchObject({ code: 'storage_unavailable', message: expect.stringContaining('auth.maxStaleMs') });
    t.setMode('ok');
    expect((await t.auth.authenticate(secret)).keyId).toBe(key.id);
  });

  it('a failed refresh is retried, not on every request', async () => {
    const t = await setup();
    const { secret } = await t.mkKey();
    await t.auth.authenticate(secret);
    t.setMode('fail');
    t.advance(6_000);
    const before = t.reads();
    await t.auth.authenticate(secret);
    await vi.waitFor(() => expect(t.reads()).toBe(before + 1), { timeout: 5_000, interval: 5 });
    await new Promise((resolve) => setImmediate(resolve)); // the failed read has settled (promise jobs run first)
    for (let i = 0; i < 5; i++) await t.auth.authenticate(secret);
    expect(t.reads()).toBe(before + 1);
    t.advance(1_000); // refreshRetryMs
    await t.auth.authenticate(secret);
    expect(t.reads()).toBe(before + 2);
  });

  it('does not serve a miss stale: an unknown key created since works after the TTL, and gets 503 (not 401) while storage is down', async () => {
    const t = await setup();
    const gen = generateKey('api');
    await expect(t.auth.authenticate(gen.secret)).rejects.toMatchObject({ code: 'invalid_api_key' });
    const tenant = (await t.records.listTenants())[0]!;
    await t.records.createKey({ tenantId: tenant.id, name: 'late', kind: 'api', prefix: gen.prefix, hash: gen.hash, tier: 'standard', allowedModels: null, userId: null, expiresAt: null });
    await expect(t.auth.authenticate(gen.secret)).rejects.toMatchObject({ code: 'invalid_api_key' }); // cached miss
    t.advance(6_000);
    t.setMode('fail');
    await expect(t.auth.authenticate(gen.secret)).rejects.toMatchObject({ code: 'storage_unavailable' });
    t.setMode('ok');
    expect((await t.auth.authenticate(gen.secret)).tenantId).toBe(tenant.id);
  });

  it('a key invalidated while its refresh is in flight is read again, not cached from the older read', async () => {
    const t = await setup();
    const { key, secret } = await t.mkKey();
    await t.auth.authenticate(secret);
    t.advance(6_000);
    t.setMode('hang');
    await t.auth.authenticate(secret); // starts the refresh, which reads the key before the revoke
    await vi.waitFor(() => expect(t.reads()).toBeGreaterThan(1), { timeout: 5_000, interval: 5 });
    t.setMode('ok');
    await t.records.revokeKey(key.id);
    t.auth.invalidate(key.id);
    t.release();
    await expect(t.auth.authenticate(secret)).rejects.toMatchObject({ code: 'revoked_api_key' });
  });

  it('jobs (by key id) get the same deadline', async () => {
    const t = await setup();
    const { key } = await t.mkKey();
    t.setMode('hang');
    await expect(t.auth.authenticateKeyId(key.id)).rejects.toMatchObject({ code: 'storage_unavailable' });
    t.setMode('ok');
    t.release();
    await vi.waitFor(async () => expect((await t.auth.authenticateKeyId(key.id)).keyId).toBe(key.id), { timeout: 5_000, interval: 5 });
  });
});

describe('Authenticator: a storage read that never ends', () => {
  it('is given up after 30 s, so the store is probed again instead of refusing every unknown key for good', async () => {
    const records = new MemoryRecords();
    const tenant = await records.createTenant({ name: 't' });
    let hang = true;
    let reads = 0;
    const faulty = Object.create(records) as MemoryRecords;
    faulty.getKeyByHash = async (hash) => {
      reads++;
      if (hang) await new Promise(() => {}); // a connection nobody can tell is dead
      return records.getKeyByHash(hash);
    };
    faulty.getTenant = (id) => records.getTenant(id);
    let now = 1_000_000;
    const auth = new Authenticator({ records: faulty, ttlMs: 5_000, lookupTimeoutMs: 20, tierModels: {}, now: () => now });
    const a = generateKey('api');
    const b = generateKey('api');
    for (const g of [a, b]) {
      await records.createKey({ tenantId: tenant.id, name: 'k', kind: 'api', prefix: g.prefix, hash: g.hash, tier: 'standard', allowedModels: null, userId: null, expiresAt: null });
    }
    await expect(auth.authenticate(a.secret)).rejects.toMatchObject({ code: 'storage_unavailable' });
    await expect(auth.authenticate(b.secret)).rejects.toMatchObject({ code: 'storage_unavailable', message: expect.stringContaining('has been failing') });
    expect(reads).toBe(1);
    hang = false;
    now += 30_000;
    expect((await auth.authenticate(b.secret)).tenantId).toBe(tenant.id);
    expect((await auth.authenticate(a.secret)).tenantId).toBe(tenant.id);
    expect(reads).toBe(3);
  });
});
