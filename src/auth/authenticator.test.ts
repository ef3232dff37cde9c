import { describe, expect, it } from 'vitest';
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
