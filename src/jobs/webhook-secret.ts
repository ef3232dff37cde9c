/**
 * The keys job webhooks are signed with: one master key (`jobs.webhooks.signingSecret`, or, in
 * embedded mode, a random key kept in the storage folder), and per tenant a secret derived from
 * it, which the tenant reads (GET /admin/tenants/:id/webhook-secret) to verify deliveries.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, linkSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { WebhookPolicy } from './webhook-policy.js';

/** A tenant's signing secret: `whsec_` + hex HMAC-SHA256(master, 'tollgate-webhook:' + tenantId). */
export function tenantWebhookSecret(master: string, tenantId: string): string {
  return `whsec_${createHmac('sha256', master).update(`tollgate-webhook:${tenantId}`).digest('hex')}`;
}

export const MASTER_SECRET_FILE = 'webhook-signing-secret';

/**
 * The master key the tenants' signing secrets derive from: `jobs.webhooks.signingSecret` when set;
 * else, embedded, a random 32-byte hex key kept in `<localDir>/webhook-signing-secret` (created
 * mode 0600 on first use, read afterwards; created atomically, so two processes starting at once
 * agree); else (distributed, none set) an error: every process must sign alike.
 */
export function resolveMasterSecret(
  policy: Pick<WebhookPolicy, 'signingSecret'>,
  localDir: string,
  distributed: boolean,
): string {
  if (policy.signingSecret) return policy.signingSecret;
  if (distributed) {
    throw new Error(
      'jobs.webhooks.signingSecret must be set in distributed mode: every gateway process must sign job webhooks with the same key',
    );
  }
  const file = join(localDir, MASTER_SECRET_FILE);
  const read = (): string | undefined => {
    let text: string;
    try {
      text = readFileSync(file, 'utf8').trim();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    if (text.length < 16) throw new Error(`${file}: the webhook signing key is shorter than 16 characters; delete the file to make a new one`);
    return text;
  };
  const existing = read();
  if (existing !== undefined) return existing;

  // Write a temporary file, then link it into place: link fails if the name exists, so a
  // process racing us either wins whole or reads the winner's complete file, never a partial one.
  mkdirSync(localDir, { recursive: true, mode: 0o700 }); // like the database's folder (src/util/private-files.ts)
  const secret = randomBytes(32).toString('hex');
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, `${secret}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(tmp, file);
    return secret;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const winner = read();
    if (winner === undefined) throw err;
    return winner;
  } finally {
    try {
      unlinkSync(tmp);
    } catch {
      /* already gone */
    }
  }
}
