/**
 * A multipart/form-data body (RFC 7578) read as it arrives: the `file` part is written to a spool
 * file on disk, the small text fields are kept, and nothing else is held. Memory stays bounded
 * whatever the body's size: at most one chunk of the socket, the tail that may hold the start of a
 * boundary, one part's headers (at most 16 KiB), and what the disk has not taken yet (writes wait
 * for it: the socket is not read meanwhile).
 *
 * Used by POST /v1/files (src/http/routes/files.ts) as its content-type parser, so the body still
 * passes through the preParsing hooks first (Idempotency-Key hashes it there).
 */
import { randomUUID } from 'node:crypto';
import { type WriteStream, createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { GatewayError } from '../errors.js';

export interface ReceivedUpload {
  /** Text fields by name (the first of each), e.g. `purpose`. */
  fields: Map<string, string>;
  /** The `file` part, spooled to `path` (the caller moves or removes it); undefined when none came. */
  file: { filename: string | undefined; path: string; bytes: number } | undefined;
  /** The most bytes of the body held in memory at once. */
  maxBufferedBytes: number;
}

export interface ReceiveOptions {
  /** Where the file part is spooled (exists). */
  spoolDir: string;
  /** Largest file part; over it: `tooLarge()` is thrown. */
  maxFileBytes: number;
  /** Largest whole body (file + framing + fields). */
  maxBodyBytes: number;
  tooLarge: () => Error;
  /** Told how many bytes are held at most so far (after each chunk). */
  onBuffered?: (maxBufferedBytes: number) => void;
  /** Longest wait for the next chunk, ms; then `timedOut('idle')` is thrown and the body stream ended. */
  idleTimeoutMs?: number;
  /** Longest time for the whole body, ms; then `timedOut('total')`. */
  timeoutMs?: number;
  timedOut?: (why: 'idle' | 'total') => Error;
}

const CRLF = Buffer.from('\r\n');
const HEADER_END = Buffer.from('\r\n\r\n');
const MAX_HEADER_BYTES = 16 * 1024;
/** Longest text field kept (a `purpose`); longer ones are a 400. */
const MAX_FIELD_BYTES = 1024;
const MAX_PARTS = 100;
/** Transport padding after a boundary, before its CRLF. */
const MAX_PADDING = 256;

function malformed(why: string): GatewayError {
  return new GatewayError('invalid_request', `The multipart/form-data body could not be read: ${why}.`);
}

/** The boundary of a multipart Content-Type; 400 when there is none. */
export function multipartBoundary(contentType: string): string {
  const m = /;\s*boundary=(?:"([^"]{1,70})"|([^\s;]{1,70}))/i.exec(contentType);
  const boundary = m?.[1] ?? m?.[2];
  if (!boundary) throw malformed('the Content-Type header has no boundary');
  return boundary;
}

type State = 'preamble' | 'boundary' | 'headers' | 'data' | 'done';

interface Part {
  kind: 'file' | 'field' | 'skip';
  name: string;
  chunks: Buffer[];
  bytes: number;
}

/** Resolves at `event`, rejects at 'error'; both listeners removed either way (no leak per write). */
function eventOrError(stream: NodeJS.EventEmitter, event: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: unknown) => {
      stream.off(event, onEvent);
      stream.off('error', onError);
      if (err === undefined) resolve();
      else reject(err);
    };
    const onEvent = () => done();
    const onError = (err: unknown) => done(err ?? new Error('stream error'));
    stream.once(event, onEvent);
    stream.once('error', onError);
  });
}

/**
 * Reads `body` to its end (the closing boundary; an epilogue is ignored). On any failure (a 400
 * for a malformed body, `tooLarge()`, the client gone) the spool file is removed before the
 * error is thrown.
 */
export async function receiveMultipart(body: AsyncIterable<Buffer | string>, contentType: string, opts: ReceiveOptions): Promise<ReceivedUpload> {
  const boundary = multipartBoundary(contentType);
  const first = Buffer.from(`--${boundary}`);
  const next = Buffer.from(`\r\n--${boundary}`);
  const fields = new Map<string, string>();
  let file: ReceivedUpload['file'];
  let out: WriteStream | undefined;
  let state: State = 'preamble';
  let pending: Buffer = Buffer.alloc(0);
  let part: Part | undefined;
  let parts = 0;
  let total = 0;
  let maxBuffered = 0;

  const startPart = async (headerText: string): Promise<void> => {
    if (++parts > MAX_PARTS) throw malformed(`it has more than ${MAX_PARTS} parts`);
    const headers = partHeaders(headerText);
    const disposition = headers.get('content-disposition');
    const params = disposition ? dispositionParams(disposition) : {};
    const name = params.name;
    if (name === 'file') {
      if (file) throw new GatewayError('invalid_value', "Invalid value for 'file': send exactly one file.", { param: 'file' });
      const path = join(opts.spoolDir, `${randomUUID()}.part`);
      file = { filename: params.filename, path, bytes: 0 };
      out = createWriteStream(path, { flags: 'wx', mode: 0o600 });
      out.on('error', () => undefined); // surfaced by the awaited writes and end below
      part = { kind: 'file', name, chunks: [], bytes: 0 };
    } else if (name !== undefined && params.filename === undefined && !fields.has(name)) {
      part = { kind: 'field', name, chunks: [], bytes: 0 };
    } else {
      part = { kind: 'skip', name: name ?? '', chunks: [], bytes: 0 };
    }
  };

  const write = async (data: Buffer): Promise<void> => {
    if (!part || data.length === 0) return;
    part.bytes += data.length;
    if (part.kind === 'file') {
      file!.bytes = part.bytes;
      if (part.bytes > opts.maxFileBytes) throw opts.tooLarge();
      if (!out!.write(data)) await eventOrError(out!, 'drain');
    } else if (part.kind === 'field') {
      if (part.bytes > MAX_FIELD_BYTES) {
        throw new GatewayError('invalid_value', `Invalid value for '${part.name.slice(0, 40)}': at most ${MAX_FIELD_BYTES} bytes.`, { param: part.name.slice(0, 40) });
      }
      part.chunks.push(Buffer.from(data));
    }
  };

  const endPart = async (): Promise<void> => {
    if (!part) return;
    if (part.kind === 'field') fields.set(part.name, Buffer.concat(part.chunks).toString('utf8'));
    if (part.kind === 'file') {
      const stream = out!;
      stream.end();
      await eventOrError(stream, 'finish');
    }
    part = undefined;
  };

  /** Consumes what `pending` holds; returns when it needs more bytes. */
  const advance = async (): Promise<void> => {
    for (;;) {
      switch (state) {
        case 'preamble': {
          const at = pending.indexOf(first);
          if (at < 0) {
            pending = pending.subarray(Math.max(0, pending.length - first.length + 1));
            return;
          }
          pending = pending.subarray(at + first.length);
          state = 'boundary';
          break;
        }
        case 'boundary': {
          if (pending.length < 2) return;
          if (pending[0] === 0x2d && pending[1] === 0x2d) {
            state = 'done'; // the closing delimiter; what follows is an epilogue
            pending = Buffer.alloc(0);
            return;
          }
          const eol = pending.indexOf(CRLF);
          if (eol < 0) {
            if (pending.length > MAX_PADDING) throw malformed('a boundary line is not followed by CRLF');
            return;
          }
          for (let i = 0; i < eol; i++) if (pending[i] !== 0x20 && pending[i] !== 0x09) throw malformed('a boundary line is not followed by CRLF');
          pending = pending.subarray(eol + 2);
          state = 'headers';
          break;
        }
        case 'headers': {
          let headerEnd: number;
          let dataStart: number;
          if (pending.length >= 2 && pending[0] === 0x0d && pending[1] === 0x0a) {
            headerEnd = 0; // a part without headers
            dataStart = 2;
          } else {
            headerEnd = pending.indexOf(HEADER_END);
            if (headerEnd < 0) {
              if (pending.length > MAX_HEADER_BYTES) throw malformed(`a part's headers are longer than ${MAX_HEADER_BYTES} bytes`);
              return;
            }
            dataStart = headerEnd + 4;
          }
          await startPart(pending.toString('utf8', 0, headerEnd));
          pending = pending.subarray(dataStart);
          state = 'data';
          break;
        }
        case 'data': {
          const at = pending.indexOf(next);
          if (at < 0) {
            // All but what may be the start of the next boundary.
            const keep = Math.min(pending.length, next.length - 1);
            await write(pending.subarray(0, pending.length - keep));
            pending = pending.subarray(pending.length - keep);
            return;
          }
          await write(pending.subarray(0, at));
          await endPart();
          pending = pending.subarray(at + next.length);
          state = 'boundary';
          break;
        }
        case 'done':
          pending = Buffer.alloc(0);
          return;
      }
    }
  };

  const chunks = body[Symbol.asyncIterator]();
  const deadline = opts.timeoutMs === undefined ? Infinity : Date.now() + opts.timeoutMs;
  /** The next chunk, within the idle timeout and the overall deadline (the body stream is ended past either). */
  const nextChunk = (): Promise<IteratorResult<Buffer | string>> => {
    const left = deadline - Date.now();
    const wait = Math.min(opts.idleTimeoutMs ?? Infinity, left);
    if (!Number.isFinite(wait)) return chunks.next();
    const why = wait === left ? 'total' : 'idle';
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([
      chunks.next(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          void chunks.return?.(); // destroys the stream: the socket is not read further
          reject(opts.timedOut?.(why) ?? new Error(`upload timed out (${why})`));
        }, Math.max(0, wait));
      }),
    ]).finally(() => clearTimeout(timer));
  };
  try {
    for (let r = await nextChunk(); !r.done; r = await nextChunk()) {
      const raw = r.value;
      const chunk = typeof raw === 'string' ? Buffer.from(raw) : raw;
      total += chunk.length;
      if (total > opts.maxBodyBytes) throw opts.tooLarge();
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      maxBuffered = Math.max(maxBuffered, pending.length + (out?.writableLength ?? 0));
      await advance();
      maxBuffered = Math.max(maxBuffered, pending.length + (out?.writableLength ?? 0));
      opts.onBuffered?.(maxBuffered);
      // The chunk is written (or copied, for a field) by now: only the tail stays referenced.
      if (pending.length > 0 && pending.length < 4_096) pending = Buffer.from(pending);
    }
    const end = state as State; // assigned in advance()
    if (end !== 'done') throw malformed(end === 'preamble' && parts === 0 ? 'no part starts with the boundary' : 'the body ends before the closing boundary');
    return { fields, file, maxBufferedBytes: maxBuffered };
  } catch (err) {
    // The file is opened asynchronously: wait for the stream to close (its open done or failed),
    // or an open that completes after the rm below would leave the file behind.
    const stream = out;
    if (stream && !stream.closed) await new Promise<void>((resolve) => stream.once('close', () => resolve()).destroy());
    if (file) await rm(file.path, { force: true });
    throw err;
  }
}

function partHeaders(text: string): Map<string, string> {
  const headers = new Map<string, string>();
  for (const line of text.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  return headers;
}

/** `form-data; name="file"; filename="a.jsonl"` (quoted or bare values; RFC 5987 `filename*`). */
export function dispositionParams(value: string): { name?: string; filename?: string } {
  const out: { name?: string; filename?: string } = {};
  const re = /;\s*([A-Za-z*]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]*))/g;
  for (let m = re.exec(value); m; m = re.exec(value)) {
    const key = m[1]!.toLowerCase();
    const raw = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : m[3]!.trim();
    if (key === 'name') out.name = raw;
    else if (key === 'filename' && out.filename === undefined) out.filename = raw;
    else if (key === 'filename*') {
      const ext = /^[\w-]+'[^']*'(.*)$/.exec(raw);
      try {
        out.filename = decodeURIComponent(ext?.[1] ?? raw);
      } catch {
        /* keep the plain filename */
      }
    }
  }
  return out;
}
