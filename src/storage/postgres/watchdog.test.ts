import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { PostgresStalled, WatchGroup, watchSocket } from './watchdog.js';

/** The parts of a net.Socket the watchdog uses. */
class FakeSocket extends EventEmitter {
  destroyed = false;
  error: Error | undefined;
  write(_chunk: unknown): boolean {
    return true;
  }
  destroy(err?: Error): this {
    this.destroyed = true;
    this.error = err;
    this.emit('close', err !== undefined);
    return this;
  }
}

const startup = () => {
  const b = Buffer.alloc(8);
  b.writeUInt32BE(8, 0);
  b.writeUInt32BE(196608, 4); // protocol 3.0
  return b;
};
const msg = (type: string, body = Buffer.alloc(0)) => {
  const b = Buffer.alloc(5 + body.length);
  b.write(type, 0, 'latin1');
  b.writeUInt32BE(4 + body.length, 1);
  body.copy(b, 5);
  return b;
};
const ready = () => msg('Z', Buffer.from('I'));
/** Feeds `buf` one byte at a time: framing must not depend on how the stream is cut. */
const bytewise = (buf: Buffer, feed: (b: Buffer) => void) => {
  for (let i = 0; i < buf.length; i++) feed(buf.subarray(i, i + 1));
};

describe('PostgreSQL stall watchdog', () => {
  beforeEach(() => vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setImmediate', 'Date'] }));
  afterEach(() => vi.useRealTimers());

  function watched(group?: WatchGroup, stallMs = 1_000) {
    const s = new FakeSocket();
    watchSocket(s as unknown as Socket, stallMs, group);
    return s;
  }

  it('drops a connection owed an answer that hears nothing for stallMs, naming the deadline', () => {
    const s = watched();
    s.write(startup());
    vi.advanceTimersByTime(999);
    expect(s.destroyed).toBe(false);
    vi.advanceTimersByTime(1);
    vi.runOnlyPendingTimers(); // the check runs after I/O (setImmediate)
    expect(s.destroyed).toBe(true);
    expect(s.error).toBeInstanceOf(PostgresStalled);
    expect(s.error!.message).toMatch(/did not answer on this connection for 1000 ms/);
  });

  it('leaves alone an idle connection (every request answered) and one whose answer streams in', () => {
    const s = watched();
    bytewise(Buffer.concat([startup()]), (b) => s.write(b));
    bytewise(Buffer.concat([msg('R', Buffer.alloc(4)), msg('S', Buffer.from('a\0b\0')), ready()]), (b) => s.emit('data', b));
    vi.advanceTimersByTime(5_000); // idle: nothing owed
    vi.runOnlyPendingTimers();
    expect(s.destroyed).toBe(false);
    // Parse/Bind/Execute/Sync in one write, then rows arriving every 600 ms: progress, not a stall.
    s.write(Buffer.concat([msg('P', Buffer.from('\0select 1\0\0\0')), msg('B', Buffer.alloc(8)), msg('E', Buffer.alloc(5)), msg('S')]));
    for (let i = 0; i < 5; i++) {
      vi.advanceTimersByTime(600);
      s.emit('data', msg('D', Buffer.alloc(2)));
    }
    s.emit('data', Buffer.concat([msg('C', Buffer.from('SELECT 1\0')), ready()]));
    vi.advanceTimersByTime(5_000);
    vi.runOnlyPendingTimers();
    expect(s.destroyed).toBe(false);
  });

  it('counts pipelined requests: one answer of two still leaves the connection owed', () => {
    const s = watched();
    s.write(startup());
    s.emit('data', ready());
    s.write(Buffer.concat([msg('Q', Buffer.from('select 1\0')), msg('Q', Buffer.from('select 2\0'))]));
    s.emit('data', ready()); // the first answer
    vi.advanceTimersByTime(1_000);
    vi.runOnlyPendingTimers();
    expect(s.destroyed).toBe(true);
  });

  it('does not watch past an SSL request (TLS takes the socket over)', () => {
    const s = watched();
    const ssl = Buffer.alloc(8);
    ssl.writeUInt32BE(8, 0);
    ssl.writeUInt32BE(80877103, 4);
    s.write(ssl);
    s.emit('data', Buffer.from('S'));
    s.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x10])); // a TLS record, not a protocol message
    vi.advanceTimersByTime(5_000);
    vi.runOnlyPendingTimers();
    expect(s.destroyed).toBe(false);
  });

  it('a stall condemns the other connections of the pool silent for a second, not the recent or idle ones', () => {
    const group = new WatchGroup();
    const [a, b, c, d] = [1, 2, 3, 4].map(() => watched(group, 3_000)) as [FakeSocket, FakeSocket, FakeSocket, FakeSocket];
    for (const s of [a, b, c, d]) {
      s.write(startup());
      s.emit('data', ready());
    }
    const query = () => msg('Q', Buffer.from('select 1\0'));
    a.write(query());
    vi.advanceTimersByTime(1_500);
    c.write(query()); // silent 1.5 s when a stalls: condemned
    vi.advanceTimersByTime(1_000);
    b.write(query()); // silent 0.5 s: spared (its own deadline still applies)
    vi.advanceTimersByTime(500);
    vi.runOnlyPendingTimers();
    expect(a.destroyed).toBe(true);
    expect(c.destroyed).toBe(true);
    expect(c.error).toBeInstanceOf(PostgresStalled);
    expect(b.destroyed).toBe(false);
    expect(d.destroyed).toBe(false); // owes nothing
    expect(group.members.size).toBe(2);
  });
});
