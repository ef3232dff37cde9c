/**
 * Storage quotas and submit-time budget checks in distributed mode (PostgreSQL + Redis): the same
 * refusals as embedded mode (test/helpers/quotas.ts), counted by PostgreSQL's triggers and shared
 * by two gateway processes; and a file larger than one chunk stored, read back and deleted.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PeerGateway, type TestGateway, auth, startGateway, startPeer } from '../helpers/gateway.js';
import { MiB, QUOTA_CONFIG, newTenant, quotaRefusals, upload } from '../helpers/quotas.js';
import { distributedStorage, dropDistributed, requireService, uniqueName } from '../helpers/services.js';

const redis = await requireService('redis');
const pg = await requireService('postgres');

describe.skipIf(!redis || !pg)('storage quotas and submit-time budget checks (distributed)', () => {
  const schema = uniqueName('tg_quota');
  let gw: TestGateway;
  let peer: PeerGateway;

  beforeAll(async () => {
    gw = await startGateway({ ...QUOTA_CONFIG, storage: distributedStorage(schema) });
    peer = await startPeer({ ...QUOTA_CONFIG, storage: distributedStorage(schema) });
  });
  afterAll(async () => {
    await peer?.close();
    await gw?.close();
    await dropDistributed(schema);
  });

  quotaRefusals(() => gw);

  it('one quota across processes: files stored through one process count in the other', async () => {
    const t = await newTenant(gw, 'Two Procs Co');
    expect((await upload(gw.url, t.key, '{}\n')).status).toBe(200);
    expect((await upload(peer.url, t.key, '{}\n')).status).toBe(200);
    const third = await upload(peer.url, t.key, '{}\n');
    expect(third.status).toBe(402);
    expect((await third.json()).error.message).toContain('quotas.files');
  });

  it('stores a file of several chunks, reads it back byte for byte through the other process, and deletes it', async () => {
    const t = await newTenant(gw, 'Chunks Co');
    const content = Buffer.alloc(3 * MiB + 123);
    for (let i = 0; i < content.length; i++) content[i] = (i * 31) & 0xff;
    const file = await (await upload(gw.url, t.key, content)).json();
    expect(file.bytes).toBe(content.length);
    const back = Buffer.from(await (await fetch(`${peer.url}/v1/files/${file.id}/content`, { headers: auth(t.key) })).arrayBuffer());
    expect(back.equals(content)).toBe(true);
    expect((await fetch(`${peer.url}/v1/files/${file.id}`, { method: 'DELETE', headers: auth(t.key) })).status).toBe(200);
    expect((await fetch(`${gw.url}/v1/files/${file.id}/content`, { headers: auth(t.key) })).status).toBe(404);
  });
});
