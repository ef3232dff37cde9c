import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { GatewayError } from '../errors.js';
import { receiveMultipart } from './multipart-upload.js';

const B = 'XyZ-boundary';
const CT = `multipart/form-data; boundary=${B}`;

function form(parts: Array<{ name: string; filename?: string; data: Buffer | string }>, opts: { preamble?: string; epilogue?: string } = {}): Buffer {
  const chunks: Buffer[] = [Buffer.from(opts.preamble ?? '')];
  for (const p of parts) {
    const disposition = `form-data; name="${p.name}"${p.filename !== undefined ? `; filename="${p.filename}"` : ''}`;
    chunks.push(Buffer.from(`--${B}\r\nContent-Disposition: ${disposition}\r\n\r\n`), Buffer.from(p.data), Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${B}--\r\n${opts.epilogue ?? ''}`));
  return Buffer.concat(chunks);
}

async function* pieces(body: Buffer, sizes: () => number): AsyncGenerator<Buffer> {
  for (let at = 0; at < body.length; ) {
    const n = Math.max(1, sizes());
    yield body.subarray(at, at + n);
    at += n;
  }
}

describe('receiveMultipart', () => {
  const dirs: string[] = [];
  const spool = () => {
    const d = mkdtempSync(join(tmpdir(), 'tollgate-mp-'));
    dirs.push(d);
    return d;
  };
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  const opts = (dir: string, maxFileBytes = 10 * 1024 * 1024) => ({
    spoolDir: dir,
    maxFileBytes,
    maxBodyBytes: maxFileBytes + 64 * 1024,
    tooLarge: () => new GatewayError('body_too_large', 'too large'),
  });

  it('spools the file and keeps the fields, however the body is cut into chunks', async () => {
    // Bytes that look like a boundary's start, CRLFs and dashes, inside the file.
    const file = Buffer.concat([randomBytes(50_000), Buffer.from(`\r\n--${B.slice(0, 5)}\r\n-\r\n--`), randomBytes(70_000)]);
    const body = form([{ name: 'purpose', data: 'batch' }, { name: 'file', filename: 'in.jsonl', data: file }], { preamble: 'ignored\r\n', epilogue: 'also ignored' });
    for (const sizes of [() => 1 + Math.floor(Math.random() * 3), () => 1 + Math.floor(Math.random() * 5_000), () => 65_536, () => body.length]) {
      const dir = spool();
      const got = await receiveMultipart(pieces(body, sizes), CT, opts(dir));
      expect(got.fields.get('purpose')).toBe('batch');
      expect(got.file?.filename).toBe('in.jsonl');
      expect(got.file?.bytes).toBe(file.length);
      expect(readFileSync(got.file!.path).equals(file)).toBe(true);
      expect(got.maxBufferedBytes).toBeLessThan(200 * 1024);
    }
  });

  it('holds at most a chunk and a small tail in memory for a large file', async () => {
    const file = Buffer.alloc(8 * 1024 * 1024, 0x61);
    const got = await receiveMultipart(pieces(form([{ name: 'file', filename: 'big', data: file }]), () => 64 * 1024), CT, opts(spool()));
    expect(got.file?.bytes).toBe(file.length);
    expect(got.maxBufferedBytes).toBeLessThan(256 * 1024);
  });

  it('refuses a file over the limit, and removes what it had spooled', async () => {
    const dir = spool();
    const body = form([{ name: 'file', filename: 'big', data: Buffer.alloc(2_000, 0x61) }]);
    await expect(receiveMultipart(pieces(body, () => 100), CT, opts(dir, 1_000))).rejects.toMatchObject({ code: 'body_too_large' });
    expect(readdirSync(dir)).toEqual([]);
  });

  it('400s a malformed body (naming why) and removes the spool file', async () => {
    const dir = spool();
    const cases: Array<[Buffer, string, string]> = [
      [Buffer.from('no boundary at all'), CT, 'no part starts with the boundary'],
      [Buffer.from(`--${B}\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nabc`), CT, 'ends before the closing boundary'],
      [Buffer.from(`--${B}x\r\n`), CT, 'not followed by CRLF'],
      [form([{ name: 'file', data: 'a' }]), 'multipart/form-data', 'has no boundary'],
    ];
    for (const [body, ct, why] of cases) {
      const err = (await receiveMultipart(pieces(body, () => 7), ct, opts(dir)).catch((e: unknown) => e)) as GatewayError;
      expect(err.code).toBe('invalid_request');
      expect(err.message).toContain(why);
    }
    const two = form([{ name: 'file', filename: 'a', data: 'x' }, { name: 'file', filename: 'b', data: 'y' }]);
    await expect(receiveMultipart(pieces(two, () => 3), CT, opts(dir))).rejects.toMatchObject({ code: 'invalid_value', param: 'file' });
    const longPurpose = form([{ name: 'purpose', data: 'p'.repeat(2_000) }]);
    await expect(receiveMultipart(pieces(longPurpose, () => 3), CT, opts(dir))).rejects.toMatchObject({ param: 'purpose' });
    expect(readdirSync(dir)).toEqual([]);
  });

  it('a body that stops arriving is ended after the idle timeout; one that drags, after the overall timeout; the spool file removed', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    try {
      const dir = spool();
      let ended = 0;
      const stalled = (trickle: boolean) =>
        ({
          [Symbol.asyncIterator]() {
            let sent = false;
            return {
              next: () => {
                if (!sent) {
                  sent = true;
                  return Promise.resolve({ done: false, value: form([{ name: 'file', filename: 'a', data: Buffer.alloc(100) }]).subarray(0, 120) });
                }
                // Trickle: a byte every 10 s (never idle for 30 s); else nothing ever again.
                return trickle
                  ? new Promise<IteratorResult<Buffer>>((resolve) => setTimeout(() => resolve({ done: false, value: Buffer.from('a') }), 10_000))
                  : new Promise<IteratorResult<Buffer>>(() => undefined);
              },
              return: () => {
                ended++;
                return Promise.resolve({ done: true, value: undefined });
              },
            };
          },
        }) as AsyncIterable<Buffer>;
      const timedOut = (why: 'idle' | 'total') => new GatewayError('request_timeout', why);
      /**
       * Moves the clock a second at a time until `p` settles, or past both deadlines (700 s); then
       * waits for it for real: its clean-up (closing and removing the spool file) is real file I/O,
       * which no amount of fake time completes.
       */
      const settle = async (p: Promise<unknown>): Promise<{ value: unknown; ms: number }> => {
        let done = false;
        let value: unknown;
        const tracked = p.then((v) => ((done = true), (value = v)));
        let ms = 0;
        while (!done && ms < 700_000) {
          await vi.advanceTimersByTimeAsync(1_000);
          ms += 1_000;
        }
        await tracked;
        return { value, ms };
      };
      const idle = await settle(receiveMultipart(stalled(false), CT, { ...opts(dir), idleTimeoutMs: 30_000, timeoutMs: 600_000, timedOut }).catch((e: unknown) => e));
      expect(idle.value).toMatchObject({ code: 'request_timeout', message: 'idle' });
      const slow = await settle(receiveMultipart(stalled(true), CT, { ...opts(dir), idleTimeoutMs: 30_000, timeoutMs: 600_000, timedOut }).catch((e: unknown) => e));
      expect(slow.value).toMatchObject({ code: 'request_timeout', message: 'total' });
      expect(ended).toBe(2); // the body stream was ended both times
      vi.useRealTimers();
      expect(readdirSync(dir)).toEqual([]);
    } finally {
      vi.useRealTimers();
    }
  });

  it('a client gone mid-body: the error propagates and the spool file is removed', async () => {
    const dir = spool();
    async function* cut(): AsyncGenerator<Buffer> {
      yield form([{ name: 'file', filename: 'a', data: Buffer.alloc(10_000) }]).subarray(0, 5_000);
      throw Object.assign(new Error('aborted'), { code: 'ECONNRESET' });
    }
    await expect(receiveMultipart(cut(), CT, opts(dir))).rejects.toThrow('aborted');
    expect(readdirSync(dir)).toEqual([]);
    expect(existsSync(dir)).toBe(true);
  });
});
