import { createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
// @ts-ignore TS6059: test helpers live outside tsconfig's rootDir (src); the import is type-checked all the same.
import { ACME_SECRET, MASTER } from '../../test/helpers/webhook-dispatcher.js';
import { MASTER_SECRET_FILE, resolveMasterSecret, tenantWebhookSecret } from './webhook-secret.js';

describe('tenantWebhookSecret', () => {
  it('is whsec_ + hex HMAC-SHA256(master, tollgate-webhook:<tenant>), different per tenant', () => {
    const expected = createHmac('sha256', MASTER).update('tollgate-webhook:acme').digest('hex');
    expect(ACME_SECRET).toBe(`whsec_${expected}`);
    expect(ACME_SECRET).toMatch(/^whsec_[0-9a-f]{64}$/);
    expect(tenantWebhookSecret(MASTER, 'globex')).not.toBe(ACME_SECRET);
    expect(tenantWebhookSecret('another-master-key-123', 'acme')).not.toBe(ACME_SECRET);
  });
});

describe('resolveMasterSecret', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  const tmp = () => {
    const d = mkdtempSync(join(tmpdir(), 'tg-whsec-'));
    dirs.push(d);
    return d;
  };

  it('uses the configured signingSecret, in either mode', () => {
    expect(resolveMasterSecret({ signingSecret: 'configured-secret-1234' }, tmp(), false)).toBe('configured-secret-1234');
    expect(resolveMasterSecret({ signingSecret: 'configured-secret-1234' }, tmp(), true)).toBe('configured-secret-1234');
  });

  it('embedded, unset: creates a random key file (mode 0600) once and reads it afterwards', () => {
    const dir = tmp();
    const first = resolveMasterSecret({}, dir, false);
    expect(first).toMatch(/^[0-9a-f]{64}$/);
    const file = join(dir, MASTER_SECRET_FILE);
    expect(readFileSync(file, 'utf8').trim()).toBe(first);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(resolveMasterSecret({}, dir, false)).toBe(first);
    expect(resolveMasterSecret({}, tmp(), false)).not.toBe(first);
  });

  it('embedded: refuses a truncated key file rather than signing with it', () => {
    const dir = tmp();
    writeFileSync(join(dir, MASTER_SECRET_FILE), 'abc\n');
    expect(() => resolveMasterSecret({}, dir, false)).toThrow(/shorter than 16/);
  });

  it('distributed, unset: throws naming jobs.webhooks.signingSecret', () => {
    expect(() => resolveMasterSecret({}, tmp(), true)).toThrow(/jobs\.webhooks\.signingSecret/);
  });
});
