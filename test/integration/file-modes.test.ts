/**
 * Issue 14, item 13: tollgate.db (and its -wal, -shm), the ledger spool and the storage folder
 * may hold prompt text: created owner-only (files 0600, folders 0700) whatever the umask allows,
 * and tightened at open when an older version left them 0644 / 0755.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LedgerWriter } from '../../src/metering/ledger-writer.js';
import { createLogger } from '../../src/observability/logger.js';
import type { Ledger, UsageEvent } from '../../src/storage/types.js';
import { ensurePrivateDir } from '../../src/util/private-files.js';
import { auth, hello, postJson, startGateway } from '../helpers/gateway.js';

const mode = (path: string) => statSync(path).mode & 0o777;
const isWindows = process.platform === 'win32';

describe.skipIf(isWindows)('file modes of the embedded store and the spool', () => {
  let parent: string;
  let previousUmask: number;
  beforeAll(() => {
    previousUmask = process.umask(0o022); // the usual umask: files 0644 and folders 0755 unless asked otherwise
    parent = mkdtempSync(join(tmpdir(), 'tollgate-modes-'));
  });
  afterAll(() => {
    process.umask(previousUmask);
    rmSync(parent, { recursive: true, force: true });
  });

  /** Every path under the storage folder that should be private, with the mode it has. */
  function modesUnder(dir: string): Record<string, string> {
    const out: Record<string, string> = {};
    const walk = (p: string, rel: string) => {
      out[rel] = mode(p).toString(8);
      if (statSync(p).isDirectory()) for (const e of readdirSync(p)) walk(join(p, e), rel === '.' ? e : `${rel}/${e}`);
    };
    walk(dir, '.');
    return out;
  }

  it('a first start creates the folder 0700 and tollgate.db, -wal, -shm and the spool 0600 / 0700', async () => {
    const dir = join(parent, 'fresh', 'state');
    const gw = await startGateway({ storage: { kind: 'embedded', dir } });
    try {
      expect((await postJson(`${gw.url}/v1/chat/completions`, hello(), auth(gw.apiKey))).status).toBe(200);
      await gw.settled();
      expect(existsSync(join(dir, 'tollgate.db-wal'))).toBe(true);
      expect(existsSync(join(dir, 'tollgate.db-shm'))).toBe(true);
      const modes = modesUnder(dir);
      for (const [path, m] of Object.entries(modes)) {
        const isDir = statSync(path === '.' ? dir : join(dir, path)).isDirectory();
        expect(m, path).toBe(isDir ? '700' : '600');
      }
      expect(Object.keys(modes)).toEqual(expect.arrayContaining(['.', 'tollgate.db', 'tollgate.db-wal', 'tollgate.db-shm', 'spool']));
    } finally {
      await gw.close();
    }
  });

  it('a start on files an older version left 0644 / 0755 tightens them', async () => {
    const dir = join(parent, 'older');
    const first = await startGateway({ storage: { kind: 'embedded', dir } });
    expect((await postJson(`${first.url}/v1/chat/completions`, hello(), auth(first.apiKey))).status).toBe(200);
    await first.settled();
    await first.gateway.close(); // keeps the folder (TestGateway.close would remove it)
    const spool = join(dir, 'spool');
    for (const f of ['tollgate.db', 'tollgate.db-wal', 'tollgate.db-shm']) if (existsSync(join(dir, f))) chmodSync(join(dir, f), 0o644);
    chmodSync(dir, 0o755);
    chmodSync(spool, 0o755);
    expect(mode(join(dir, 'tollgate.db'))).toBe(0o644);

    const again = await startGateway({ storage: { kind: 'embedded', dir }, auth: { bootstrap: false } });
    try {
      expect(mode(dir)).toBe(0o700);
      expect(mode(join(dir, 'tollgate.db'))).toBe(0o600);
      for (const f of ['tollgate.db-wal', 'tollgate.db-shm']) if (existsSync(join(dir, f))) expect(mode(join(dir, f)), f).toBe(0o600);
      expect(mode(spool)).toBe(0o700);
    } finally {
      await again.close();
    }
  });

  it('never tightens a shared folder: sticky or world-writable (/tmp), or holding files that are not Tollgate\'s', () => {
    const shared = join(parent, 'shared');
    mkdirSync(shared);
    chmodSync(shared, 0o1777);
    ensurePrivateDir(shared, () => true);
    expect(mode(shared)).toBe(0o777);
    expect(statSync(shared).mode & 0o1000).toBe(0o1000);

    const project = join(parent, 'project');
    mkdirSync(project);
    chmodSync(project, 0o755);
    writeFileSync(join(project, 'package.json'), '{}');
    const own = (name: string) => name.startsWith('tollgate.db');
    ensurePrivateDir(project, own);
    expect(mode(project)).toBe(0o755);
    rmSync(join(project, 'package.json'));
    writeFileSync(join(project, 'tollgate.db'), '');
    ensurePrivateDir(project, own);
    expect(mode(project)).toBe(0o700);
  });

  it('spool segments are 0600, also one left 0644 by a crashed older process', async () => {
    const root = join(parent, 'spool-only');
    const failing: Ledger = { append: async () => Promise.reject(new Error('down')) } as unknown as Ledger;
    const log = createLogger('silent');
    const writer = new LedgerWriter({ ledger: failing, spoolDir: root, log, maxRetryDelayMs: 60_000 });
    await writer.start();
    writer.record({ id: 'ev_1' } as UsageEvent);
    await writer.flush().catch(() => undefined);
    const own = join(root, String(process.pid));
    const segments = readdirSync(own).filter((f) => f.startsWith('spool-'));
    expect(segments.length).toBeGreaterThan(0);
    for (const s of segments) expect(mode(join(own, s)), s).toBe(0o600);
    expect(mode(join(own, 'owner'))).toBe(0o600);
    expect(mode(root)).toBe(0o700);
    expect(mode(own)).toBe(0o700);
    await writer.close();

    // An older process left its segment world-readable: the next start tightens it (and replays it).
    for (const s of segments) chmodSync(join(own, s), 0o644);
    chmodSync(root, 0o755);
    const next = new LedgerWriter({ ledger: failing, spoolDir: root, log, maxRetryDelayMs: 60_000 });
    await next.start().catch(() => undefined);
    for (const s of segments) if (existsSync(join(own, s))) expect(mode(join(own, s)), s).toBe(0o600);
    expect(mode(root)).toBe(0o700);
    await next.close();
  });
});
