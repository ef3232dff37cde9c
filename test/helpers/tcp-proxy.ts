/**
 * A loopback TCP proxy a test (or a bench) puts between the gateway and a service (PostgreSQL,
 * Redis) to fault the path without touching the service other tests share:
 *
 *   const proxy = await startTcpProxy(5432);           // 127.0.0.1:5432 by default
 *   connect the gateway to 127.0.0.1:${proxy.port}
 *   await proxy.setMode('pause');  ...  await proxy.setMode('pass');
 *   await proxy.close();
 *
 * Modes (each applies to the connections already open and to new ones):
 *  - `pass`: bytes flow both ways (bytes held by `pause` are delivered now, in order).
 *  - `refuse`: the server is down: the listening socket is closed (new connections get
 *    ECONNREFUSED) and every open connection is destroyed. Leaving it listens again on the same port.
 *  - `pause`: a network partition: connections are accepted and kept, nothing is forwarded in
 *    either direction (bytes wait, like TCP retransmits would) and no close is passed on.
 *  - `drop`: a broken middlebox: connections are accepted and kept, every byte either way is
 *    read and thrown away, and no close is passed on. When the mode changes, a connection that
 *    lost bytes is reset: TCP never delivers a stream with a hole in it, so a real connection
 *    that lost bytes is one its endpoints can only see reset (resuming it would hand PostgreSQL
 *    and its client a desynchronised protocol, which no client can survive: replies attributed
 *    to the wrong queries).
 *
 * Only ever listens on 127.0.0.1.
 */
import { type Server, type Socket, createConnection, createServer } from 'node:net';

export type ProxyMode = 'pass' | 'refuse' | 'pause' | 'drop';

export interface TcpProxy {
  /** The port the proxy listens on (127.0.0.1); stays the same across `refuse`. */
  readonly port: number;
  readonly mode: ProxyMode;
  /** Client connections open now. */
  readonly connections: number;
  setMode(mode: ProxyMode): Promise<void>;
  /** Same as `setMode('refuse')` (kept for older tests). */
  cut(): Promise<void>;
  /** Same as `setMode('pass')` (kept for older tests). */
  restore(): Promise<void>;
  /** Stops listening and destroys every connection. */
  close(): Promise<void>;
}

interface Pair {
  client: Socket;
  upstream: Socket;
  /** One side closed while the mode hid it: passed on when the mode is `pass` again. */
  closedWhileHidden: boolean;
  /** Bytes were thrown away in `drop` mode: the connection is reset when the mode changes. */
  lostBytes?: boolean;
}

/**
 * Starts a proxy to `targetHost:targetPort` on a free loopback port. Also callable as
 * `startTcpProxy(host, port)` (the older argument order).
 */
export async function startTcpProxy(targetPort: number, targetHost?: string): Promise<TcpProxy>;
export async function startTcpProxy(targetHost: string, targetPort: number): Promise<TcpProxy>;
export async function startTcpProxy(a: number | string, b?: number | string): Promise<TcpProxy> {
  const targetPort = typeof a === 'number' ? a : Number(b);
  const targetHost = typeof a === 'string' ? a : typeof b === 'string' ? b : '127.0.0.1';
  const pairs = new Set<Pair>();
  let server: Server | undefined;
  let port = 0;
  let mode: ProxyMode = 'pass';
  let closed = false;

  const destroy = (p: Pair) => {
    p.client.destroy();
    p.upstream.destroy();
    pairs.delete(p);
  };

  const forward = (p: Pair, from: Socket, to: Socket) => {
    from.on('data', (chunk: Buffer) => {
      if (mode === 'drop') {
        p.lostBytes = true; // swallowed
        return;
      }
      // 'pass' (a 'pause' stops the stream before any data event, see applyMode)
      if (!to.write(chunk)) from.pause();
    });
    to.on('drain', () => {
      if (mode !== 'pause') from.resume();
    });
    const ended = () => {
      if (mode === 'pass') destroy(p);
      else p.closedWhileHidden = true;
    };
    from.on('close', ended);
    from.on('error', ended);
  };

  const accept = (client: Socket) => {
    const upstream = createConnection(targetPort, targetHost);
    const p: Pair = { client, upstream, closedWhileHidden: false };
    pairs.add(p);
    forward(p, client, upstream);
    forward(p, upstream, client);
    if (mode === 'pause') {
      client.pause();
      upstream.pause();
    }
  };

  const listen = () =>
    new Promise<void>((resolve, reject) => {
      const s = createServer(accept);
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => {
        port = (s.address() as { port: number }).port;
        server = s;
        resolve();
      });
    });

  const stopListening = () =>
    new Promise<void>((resolve) => {
      const s = server;
      server = undefined;
      if (!s) return resolve();
      s.close(() => resolve());
    });

  const applyMode = async (next: ProxyMode) => {
    if (closed) throw new Error('tcp proxy: closed');
    const previous = mode;
    mode = next;
    if (next === 'refuse') {
      for (const p of [...pairs]) destroy(p);
      await stopListening();
      return;
    }
    if (previous === 'refuse' && !server) await listen();
    for (const p of [...pairs]) {
      if (previous === 'drop' && next !== 'drop' && p.lostBytes) {
        destroy(p);
        continue;
      }
      if (next === 'pause') {
        p.client.pause();
        p.upstream.pause();
      } else {
        if (next === 'pass' && p.closedWhileHidden) {
          destroy(p);
          continue;
        }
        p.client.resume();
        p.upstream.resume();
      }
    }
  };

  await listen();
  return {
    get port() {
      return port;
    },
    get mode() {
      return mode;
    },
    get connections() {
      return pairs.size;
    },
    setMode: applyMode,
    cut: () => applyMode('refuse'),
    restore: () => applyMode('pass'),
    async close() {
      if (closed) return;
      closed = true;
      for (const p of [...pairs]) destroy(p);
      await stopListening();
    },
  };
}
