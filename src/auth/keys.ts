/**
 * API key secrets: generated at random, shown once, stored only as a sha256 hash. The secrets carry
 * 192 bits of randomness, so a fast hash is enough (no password-style stretching needed) and keeps
 * authentication off the CPU budget of the hot path.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { ApiKeyRecord } from '../storage/types.js';

const PREFIX: Record<ApiKeyRecord['kind'], string> = { api: 'tg-', admin: 'tg-admin-' };

export interface GeneratedKey {
  secret: string;
  hash: string;
  /** Safe to display: identifies the key without revealing it. */
  prefix: string;
}

export function generateKey(kind: ApiKeyRecord['kind']): GeneratedKey {
  const secret = PREFIX[kind] + randomBytes(24).toString('base64url');
  return { secret, hash: hashKey(secret), prefix: secret.slice(0, PREFIX[kind].length + 6) };
}

export function hashKey(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

/** Reads the key from `Authorization: Bearer <key>` (OpenAI SDKs) or `api-key` (Azure-style clients). */
export function extractKey(headers: Record<string, string | string[] | undefined>): string | undefined {
  const auth = headers['authorization'];
  if (typeof auth === 'string') {
    const m = /^Bearer\s+(.+)$/i.exec(auth.trim());
    if (m?.[1]) return m[1].trim();
  }
  const apiKey = headers['api-key'];
  if (typeof apiKey === 'string' && apiKey.trim() !== '') return apiKey.trim();
  return undefined;
}

/** Parses `30d`, `12h`, `15m`, `3600s` into milliseconds. */
export function parseDuration(text: string): number {
  const m = /^(\d+)\s*(ms|s|m|h|d)$/.exec(text.trim());
  if (!m) throw new Error(`invalid duration '${text}' (use e.g. 30d, 12h, 15m, 90s)`);
  const n = Number(m[1]);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'ms' | 's' | 'm' | 'h' | 'd'];
  return n * unit;
}
