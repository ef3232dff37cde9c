/**
 * Finds PostgreSQL connections that stopped answering and destroys them.
 *
 * A paused server, a network partition or a middlebox that drops bytes leave the TCP connection
 * open while no reply ever comes: postgres.js would wait forever (its `connect_timeout` only
 * covers the handshake) and so would every query queued or pipelined on that connection. With a
 * server-side `statement_timeout` every request gets an answer (rows or an error) within that
 * time, so a connection that is owed an answer and has received nothing for longer than the
 * statement timeout plus a grace is broken: {@link watchSocket} destroys it with an error naming
 * the deadline, the queries on it fail, and postgres.js opens a new connection for the next ones.
 *
 * "Owed an answer" is read from the wire, without touching the driver: on a plain connection the
 * watchdog frames the protocol messages both ways and counts the requests that end in
 * ReadyForQuery (the startup message, Sync, simple Query) against the ReadyForQuery messages
 * received; any byte received counts as progress (a long result streams).
 *
 * Limit: on a TLS connection Node's TLS layer takes the socket's handle over after the SSL
 * request, so the watchdog sees nothing past it; such connections rely on `statement_timeout`
 * (a lock or a slow server) and TCP keepalive (a dead peer), not on this.
 */
import type { Socket } from 'node:net';

/** Why a connection was destroyed (the error its queries reject with). */
export class PostgresStalled extends Error {
  constructor(ms: number) {
    super(`PostgreSQL did not answer on this connection for ${ms} ms (statement timeout + grace): connection dropped`);
    this.name = 'PostgresStalled';
  }
}

/** Messages after the first: 1 type byte + int32 length (the length counts itself, not the type). */
class Framer {
  private readonly header = Buffer.alloc(8);
  private have = 0;
  private skip = 0;
  /** The first message of the frontend stream has no type byte (startup, SSL or cancel request). */
  private untyped: boolean;

  constructor(firstUntyped: boolean, private readonly onMessage: (type: number, firstWord: number) => void) {
    this.untyped = firstUntyped;
  }

  feed(buf: Buffer): void {
    let i = 0;
    while (i < buf.length) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, buf.length - i);
        this.skip -= n;
        i += n;
        continue;
      }
      const headerSize = this.untyped ? 8 : 5; // untyped: length + the protocol code
      const n = Math.min(headerSize - this.have, buf.length - i);
      buf.copy(this.header, this.have, i, i + n);
      this.have += n;
      i += n;
      if (this.have < headerSize) return;
      this.have = 0;
      if (this.untyped) {
        const length = this.header.readUInt32BE(0);
        const code = this.header.readUInt32BE(4);
        this.untyped = false;
        this.skip = Math.max(0, length - 8);
        this.onMessage(0, code);
      } else {
        const type = this.header[0]!;
        const length = this.header.readUInt32BE(1);
        this.skip = Math.max(0, length - 4);
        this.onMessage(type, 0);
      }
    }
  }
}

const SSL_REQUEST = 80877103;
const GSS_REQUEST = 80877104;
const CANCEL_REQUEST = 80877102;
const SYNC = 0x53; // 'S'
const QUERY = 0x51; // 'Q'
const FLUSH = 0x48; // 'H'
const READY = 0x5a; // 'Z'

/**
 * The watched connections of one pool. When one of them stalls, the path to the server is
 * suspect: the others that are owed an answer and have heard nothing for {@link SUSPECT_MS} are
 * dropped with it, instead of each waiting out its own deadline (after a partition heals, a
 * request must not land on a connection that lost its bytes and wait seconds more).
 */
export class WatchGroup {
  readonly members = new Set<{ silentMs(): number | undefined; drop(err: Error): void }>();
}

/** Silence that, once a connection of the same pool has stalled, condemns another one too. */
export const SUSPECT_MS = 1_000;

/**
 * Watches one socket postgres.js is about to use: destroys it once it is owed an answer and has
 * received nothing for `stallMs`. Cleans up after itself when the socket closes.
 */
export function watchSocket(socket: Socket, stallMs: number, group?: WatchGroup): void {
  let owed = 0; // requests ending in ReadyForQuery, minus ReadyForQuery received
  let flushOwed = false; // a Flush asks for whatever is ready: some bytes are owed, no ReadyForQuery
  let opaque = false; // TLS: the TLS layer takes the handle over, nothing more is seen here
  let since = 0; // last progress (a byte received, or the moment something became owed)
  let timer: NodeJS.Timeout | undefined;

  const waiting = () => !opaque && (owed > 0 || flushOwed);
  const disarm = () => {
    if (timer) clearTimeout(timer);
    timer = undefined;
  };
  const arm = (ms: number) => {
    if (timer) timer.refresh();
    else {
      timer = setTimeout(fire, ms);
      timer.unref();
    }
  };
  const fire = () => {
    timer = undefined;
    // After the poll phase: bytes that arrived while the event loop was busy count first.
    setImmediate(() => {
      if (socket.destroyed || !waiting()) return;
      const silent = Date.now() - since;
      if (silent >= stallMs) {
        const err = new PostgresStalled(stallMs);
        socket.destroy(err);
        for (const other of group?.members ?? []) {
          const quiet = other.silentMs();
          if (quiet !== undefined && quiet >= Math.min(SUSPECT_MS, stallMs)) other.drop(err);
        }
      } else {
        timer = setTimeout(fire, stallMs - silent);
        timer.unref();
      }
    });
  };
  const becameOwed = (before: boolean) => {
    if (!before && waiting()) {
      since = Date.now();
      arm(stallMs);
    }
  };

  const out = new Framer(true, (type, code) => {
    if (type === 0) {
      if (code === SSL_REQUEST || code === GSS_REQUEST) opaque = true;
      else if (code !== CANCEL_REQUEST) owed++; // the startup message: answered by the first ReadyForQuery
    } else if (type === SYNC || type === QUERY) owed++;
    else if (type === FLUSH) flushOwed = true;
  });
  const inbound = new Framer(false, (type) => {
    if (type === READY && owed > 0) owed--;
  });

  // Reading the wire must never break the connection: anything unexpected turns the watch off.
  const frame = (feed: () => void) => {
    try {
      feed();
    } catch {
      opaque = true;
    }
  };

  const write = socket.write.bind(socket) as (...args: unknown[]) => boolean;
  socket.write = ((chunk: unknown, ...rest: unknown[]) => {
    const before = waiting();
    if (!opaque) frame(() => out.feed(toBuffer(chunk)));
    becameOwed(before);
    return write(chunk, ...rest);
  }) as Socket['write'];

  socket.on('data', (chunk: Buffer) => {
    since = Date.now();
    flushOwed = false;
    // Once TLS starts (after the one-byte answer to the SSL request) nothing more is framed.
    if (!opaque) frame(() => inbound.feed(chunk));
    if (waiting()) arm(stallMs);
    else disarm();
  });
  const member = {
    silentMs: () => (socket.destroyed || !waiting() ? undefined : Date.now() - since),
    drop: (err: Error) => socket.destroy(err),
  };
  group?.members.add(member);
  socket.once('close', () => {
    disarm();
    group?.members.delete(member);
  });
}

function toBuffer(chunk: unknown): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  return Buffer.from(String(chunk));
}
