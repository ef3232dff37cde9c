/**
 * POST /v1/files against an anonymous or greedy client (issue 14, item 4): the key is checked
 * before any byte of the body is read, an upload is streamed to disk (the bytes held in memory at
 * once stay bounded, whatever the file's size), and concurrent uploads are capped per key and in
 * total (429 with Retry-After naming the setting). Raw HTTP, so the test controls how much of the
 * body is sent and when.
 */
import { existsSync, readdirSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { UploadObserver } from '../../src/jobs/upload-guard.js';
import { type TestGateway, auth, postJson, startGateway } from '../helpers/gateway.js';

const MiB = 1024 * 1024;
const BOUNDARY = 'tollgateboundary';

/** The multipart head of a `file` part (after a `purpose` part); the file's bytes follow it. */
function head(filename = 'big.jsonl'): Buffer {
  return Buffer.from(
    `--${BOUNDARY}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n` +
      `--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="${filename}"\r\nContent-Type: application/jsonl\r\n\r\n`,
  );
}
const TAIL = Buffer.from(`\r\n--${BOUNDARY}--\r\n`);

interface Partial {
  /** Resolves with the answer (status, headers, body) whenever it comes. */
  response: Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>;
  /** Bytes of the body written so far. */
  sent(): number;
  /** Sends the rest of the body (the file padded to its declared size, then the closing boundary). */
  finish(): void;
  abort(): void;
}

/**
 * Starts a POST /v1/files whose Content-Length announces `fileBytes` of file, and sends only the
 * first `sendBytes` of the body; the rest waits for finish().
 */
function partialUpload(url: string, headers: Record<string, string>, fileBytes: number, sendBytes: number): Partial {
  const h = head();
  const total = h.length + fileBytes + TAIL.length;
  const req = http.request(`${url}/v1/files`, {
    method: 'POST',
    headers: { ...headers, 'content-type': `multipart/form-data; boundary=${BOUNDARY}`, 'content-length': String(total) },
  });
  let sent = 0;
  req.on('error', () => undefined); // the server may close the connection while the body is still being sent
  const response = new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
  });
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  const write = (buf: Buffer) => {
    sent += buf.length;
    req.write(buf);
  };
  write(h);
  let file = 0;
  while (sent < sendBytes && file < fileBytes) {
    const n = Math.min(chunk.length, fileBytes - file);
    write(chunk.subarray(0, n));
    file += n;
  }
  return {
    response,
    sent: () => sent,
    finish() {
      const pump = (): void => {
        while (file < fileBytes) {
          const n = Math.min(chunk.length, fileBytes - file);
          file += n;
          sent += n;
          if (!req.write(chunk.subarray(0, n))) {
            req.once('drain', pump);
            return;
          }
        }
        req.end(TAIL);
      };
      pump();
    },
    abort: () => req.destroy(),
  };
}

/** Resolves with `p`, or rejects when it has not settled once `what` should long have happened. */
function within<T>(p: Promise<T>, what: string, ms = 10_000): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer: ${what}`)), ms);
    }),
  ]);
}

/** Upload events, awaited by the tests instead of sleeping. */
class Uploads implements UploadObserver {
  readonly finished: Array<{ keyId: string; bytes: number; maxBufferedBytes: number }> = [];
  startedTotal = 0;
  #waiters: Array<{ n: number; resolve: () => void }> = [];
  started(): void {
    this.startedTotal++;
    this.#wake();
  }
  ended(stats: { keyId: string; bytes: number; maxBufferedBytes: number }): void {
    this.finished.push(stats);
    this.#wake();
  }
  /** Resolves once `n` uploads have started (been given a slot). */
  startedCount(n: number): Promise<void> {
    return new Promise((resolve) => {
      this.#waiters.push({ n, resolve });
      this.#wake();
    });
  }
  #wake(): void {
    this.#waiters = this.#waiters.filter((w) => (this.startedTotal >= w.n ? (w.resolve(), false) : true));
  }
}

describe('POST /v1/files against anonymous and greedy clients', () => {
  /** Upload bodies still in the spool folder. */
  const spooled = () => {
    const dir = join(gw.gateway.storage.localDir, 'uploads');
    return existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.part')) : [];
  };
  let gw: TestGateway;
  const uploads = new Uploads();
  let keys: string[] = [];

  beforeAll(async () => {
    gw = await startGateway(
      { jobs: { batch: { maxFileBytes: 100 * MiB, maxConcurrentUploadsPerKey: 1, maxConcurrentUploads: 2 } } },
      { uploadObserver: uploads },
    );
    const admin = auth(gw.adminKey);
    keys = [gw.apiKey];
    for (const name of ['second', 'third']) {
      const key = await postJson(`${gw.url}/admin/v1/keys`, { tenant_id: gw.tenantId, name }, admin);
      expect(key.status).toBe(201);
      keys.push(key.body.key);
    }
  });
  afterAll(async () => {
    await gw?.close();
  });

  it('answers an upload without a key with 401 before the client has sent its 90 MB body, and closes the connection', async () => {
    const up = partialUpload(gw.url, {}, 90 * MiB, 1 * MiB);
    const res = await within(up.response, 'the gateway waited for the whole anonymous body');
    expect(res.status).toBe(401);
    expect(JSON.parse(res.body).error.code).toBe('missing_api_key');
    expect(res.headers.connection).toBe('close');
    expect(up.sent()).toBeLessThan(2 * MiB); // answered while 88 MB were still to come
    up.abort();

    // A wrong key: the same.
    const wrong = partialUpload(gw.url, auth('tg_live_not_a_key'), 90 * MiB, 1 * MiB);
    expect((await within(wrong.response, 'a wrong key waited for the body')).status).toBe(401);
    wrong.abort();
  });

  it('refuses a body whose Content-Length is over jobs.batch.maxFileBytes at once (413 naming it), before reading it', async () => {
    const up = partialUpload(gw.url, auth(gw.apiKey), 200 * MiB, 1 * MiB);
    const res = await within(up.response, 'an oversized upload was read');
    expect(res.status).toBe(413);
    expect(JSON.parse(res.body).error.message).toContain('jobs.batch.maxFileBytes');
    up.abort();
  });

  it('streams an authenticated upload to disk: 20 MiB stored, under 1 MiB of it in memory at any time', async () => {
    const before = uploads.finished.length;
    const up = partialUpload(gw.url, auth(gw.apiKey), 20 * MiB, 0);
    up.finish();
    const res = await within(up.response, 'the upload did not finish');
    expect(res.status).toBe(200);
    const file = JSON.parse(res.body);
    expect(file.bytes).toBe(20 * MiB);
    const stats = uploads.finished.slice(before).find((s) => s.bytes === 20 * MiB);
    expect(stats).toBeDefined();
    expect(stats!.maxBufferedBytes).toBeLessThan(1 * MiB);

    // The stored bytes are the uploaded ones.
    const content = await fetch(`${gw.url}/v1/files/${file.id}/content`, { headers: auth(gw.apiKey) });
    const bytes = Buffer.from(await content.arrayBuffer());
    expect(bytes.length).toBe(20 * MiB);
    expect(bytes.every((b) => b === 0x61)).toBe(true);
    expect((await fetch(`${gw.url}/v1/files/${file.id}`, { method: 'DELETE', headers: auth(gw.apiKey) })).status).toBe(200);
  });

  it('still hashes the streamed body for Idempotency-Key: the same upload again is a replay, another body a 422', async () => {
    const send = (content: string) => {
      const form = new FormData();
      form.append('purpose', 'batch');
      form.append('file', new Blob([content]), 'idem.jsonl');
      return fetch(`${gw.url}/v1/files`, { method: 'POST', headers: { ...auth(gw.apiKey), 'idempotency-key': 'upload-1' }, body: form });
    };
    // FormData picks a new boundary each time: one body, sent twice as the same bytes.
    const body = new Response((() => {
      const form = new FormData();
      form.append('purpose', 'batch');
      form.append('file', new Blob(['{"a":1}\n']), 'idem.jsonl');
      return form;
    })());
    const contentType = body.headers.get('content-type')!;
    const bytes = Buffer.from(await body.arrayBuffer());
    const post = () =>
      fetch(`${gw.url}/v1/files`, { method: 'POST', headers: { ...auth(gw.apiKey), 'idempotency-key': 'upload-1', 'content-type': contentType }, body: bytes });
    const first = await post();
    expect(first.status).toBe(200);
    const id = (await first.json()).id;
    const again = await post();
    expect(again.headers.get('x-tollgate-idempotent-replay')).toBe('true');
    expect((await again.json()).id).toBe(id);
    expect((await send('{"b":2}\n')).status).toBe(422);
    // Neither the replay nor the refusal leaves its spooled body behind.
    await vi.waitFor(() => expect(spooled()).toEqual([]), { timeout: 10_000, interval: 5 });
  });

  it('a body refused after it was spooled (a repeated query parameter, a replay, a mismatch) leaves no file in the spool', async () => {
    const form = () => {
      const f = new FormData();
      f.append('purpose', 'batch');
      f.append('file', new Blob(['{"a":1}\n'.repeat(100_000)]), 'big.jsonl');
      return f;
    };
    const res = await fetch(`${gw.url}/v1/files?purpose=a&purpose=b`, { method: 'POST', headers: auth(gw.apiKey), body: form() });
    expect(res.status).toBe(400);
    await vi.waitFor(() => expect(spooled()).toEqual([]), { timeout: 10_000, interval: 5 });
  });

  it('caps concurrent uploads per key and in total: 429 with Retry-After naming the setting; a slot frees when its upload ends', async () => {
    const base = uploads.startedTotal;
    // Key 1 holds its only slot.
    const a = partialUpload(gw.url, auth(keys[0]!), 4 * MiB, 64 * 1024);
    await uploads.startedCount(base + 1);
    const b = partialUpload(gw.url, auth(keys[0]!), 1024, 2048);
    b.finish();
    const perKey = await within(b.response, 'a second upload of one key');
    expect(perKey.status).toBe(429);
    expect(Number(perKey.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(JSON.parse(perKey.body).error.message).toContain('jobs.batch.maxConcurrentUploadsPerKey');

    // Key 2 takes the second (last) slot of the process; key 3 is refused by the total.
    const c = partialUpload(gw.url, auth(keys[1]!), 4 * MiB, 64 * 1024);
    await uploads.startedCount(base + 2);
    const d = partialUpload(gw.url, auth(keys[2]!), 1024, 2048);
    d.finish();
    const total = await within(d.response, 'an upload over the total');
    expect(total.status).toBe(429);
    expect(total.headers['retry-after']).toBeDefined();
    expect(JSON.parse(total.body).error.message).toContain('jobs.batch.maxConcurrentUploads');

    // A client that goes away frees its slot; a finished upload frees its own.
    const ended = uploads.finished.length;
    a.abort();
    c.finish();
    expect((await within(c.response, 'the second upload')).status).toBe(200);
    await waitUntil(() => uploads.finished.length >= ended + 2);
    const e = partialUpload(gw.url, auth(keys[0]!), 1024, 0);
    e.finish();
    expect((await within(e.response, 'an upload after the slots were freed')).status).toBe(200);
  });
});

async function waitUntil(cond: () => boolean): Promise<void> {
  const until = Date.now() + 10_000;
  while (!cond()) {
    if (Date.now() > until) throw new Error('condition not met');
    await new Promise((r) => setTimeout(r, 10));
  }
}
