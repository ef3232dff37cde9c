/**
 * What one tenant may store, and what it may queue (issue 14, item 5), through a real embedded
 * gateway: a tenant whose budget is used up gets the online path's 402 at submit (POST /v1/jobs,
 * `Prefer: respond-async`, POST /v1/batches) and nothing is stored; per-tenant quotas on files,
 * file bytes, jobs and feedback refuse with 429 `storage_quota_exceeded` naming the setting;
 * uploads count against the key's request rate limit; a deleted file's bytes leave the disk.
 * The same checks in distributed mode: storage-quotas.pg.test.ts.
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestGateway, auth, startGateway } from '../helpers/gateway.js';
import { MiB, QUOTA_CONFIG, newTenant, quotaRefusals, upload } from '../helpers/quotas.js';

describe('storage quotas and submit-time budget checks (embedded)', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway(QUOTA_CONFIG);
  });
  afterAll(async () => {
    await gw?.close();
  });

  quotaRefusals(() => gw);

  it("a deleted file's bytes leave the disk at once; the database does not keep them", async () => {
    const t = await newTenant(gw, 'Disk Co');
    const dir = gw.gateway.config.storage.dir;
    const res = await upload(gw.url, t.key, Buffer.alloc(3 * MiB, 0x62));
    const file = await res.json();
    expect(readdirSync(join(dir, 'files'))).toContain(file.id);
    expect((await fetch(`${gw.url}/v1/files/${file.id}`, { method: 'DELETE', headers: auth(t.key) })).status).toBe(200);
    expect(readdirSync(join(dir, 'files'))).not.toContain(file.id);
    const size = (name: string) => {
      try {
        return statSync(join(dir, name)).size;
      } catch {
        return 0;
      }
    };
    expect(size('tollgate.db') + size('tollgate.db-wal')).toBeLessThan(2 * MiB);
    expect(readdirSync(join(dir, 'uploads'))).toEqual([]); // no spool file left behind
  });
});
