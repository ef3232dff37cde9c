/**
 * postgres.js 3.4.9 throws from an Immediate when a deferred write runs after its connection
 * closed (porsager/postgres#1154, #1208; open upstream): an uncaught TypeError that takes the
 * gateway down during a PostgreSQL outage (seen here: the PostgreSQL-down test of
 * failure-policy.redis.test.ts, 1 run in 5 under load). patches/postgres+3.4.9.patch, applied by
 * `npm install` (postinstall: patch-package), settles the write with CONNECTION_CLOSED instead.
 * This checks the installed driver carries the patch, in both of its builds.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';

// The package's main entry is cjs/src/index.js: its root is two folders up.
const root = dirname(dirname(dirname(createRequire(import.meta.url).resolve('postgres'))));

describe('the installed postgres driver is patched', () => {
  it.each(['src/connection.js', 'cjs/src/connection.js'])('%s guards the deferred write against a closed socket', (file) => {
    const text = readFileSync(join(root, file), 'utf8');
    const nextWrite = text.slice(text.indexOf('function nextWrite('), text.indexOf('function nextWrite(') + 600);
    expect(nextWrite).toMatch(/if \(!socket\) \{[\s\S]*CONNECTION_CLOSED[\s\S]*return false/);
    expect(JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version).toBe('3.4.9'); // a new version: check whether it still needs the patch
  });
});
