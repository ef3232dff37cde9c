#!/usr/bin/env node
/**
 * The benchmark's floor: the least a Node.js proxy can do. A node:http server that forwards every
 * request to one upstream through an undici keep-alive Pool and pipes the answer back (SSE
 * streams included, chunk by chunk). No auth, no parsing, no logging, no metrics. Whatever
 * Tollgate costs beyond this is the price of its features.
 *
 * Plain JS so that it runs under bare node:  node bench/floor-proxy.mjs --port 8091 --upstream http://127.0.0.1:8090
 */
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';

const { values } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '8091' },
    upstream: { type: 'string' },
    connections: { type: 'string', default: '128' },
  },
});
if (!values.upstream) {
  process.stderr.write('usage: node bench/floor-proxy.mjs --upstream http://HOST:PORT [--port N] [--host H] [--connections N]\n');
  process.exit(2);
}

const upstream = new URL(values.upstream);
const pool = new Pool(upstream.origin, {
  connections: Number(values.connections),
  pipelining: 1,
  keepAliveTimeout: 30_000,
  keepAliveMaxTimeout: 60_000,
});

// Hop-by-hop headers (RFC 9110 7.6.1) and host: never forwarded.
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'host']);

function endToEnd(headers) {
  const out = {};
  for (const name in headers) if (!HOP_BY_HOP.has(name)) out[name] = headers[name];
  return out;
}

function sendUpstreamError(res, err) {
  if (res.headersSent) {
    res.destroy(err);
    return;
  }
  const body = JSON.stringify({ error: { message: `floor proxy: upstream failed: ${err.message}`, type: 'upstream_error', param: null, code: null } });
  res.writeHead(502, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** Forwards one request whose body (if any) has been read. */
function forward(req, res, body) {
  // A client that goes away aborts the upstream call.
  const abort = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) abort.abort();
  });
  pool.stream(
    { path: req.url, method: req.method, headers: endToEnd(req.headers), body, signal: abort.signal, opaque: res },
    ({ statusCode, headers, opaque }) => {
      opaque.writeHead(statusCode, endToEnd(headers));
      return opaque;
    },
    (err) => {
      if (err) sendUpstreamError(res, err);
    },
  );
}

// Request bodies (small JSON here) are read whole and sent with the headers in one write:
// streaming them through costs an extra write per request and measurably worse tails. Responses
// are streamed through as they arrive (SSE included).
const server = createServer({ keepAlive: true, noDelay: true, keepAliveTimeout: 65_000 }, (req, res) => {
  const hasBody = (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0') || req.headers['transfer-encoding'] !== undefined;
  if (!hasBody) {
    forward(req, res, null);
    return;
  }
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.once('end', () => forward(req, res, chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)));
  req.once('error', () => res.destroy());
});
server.headersTimeout = 66_000;
server.requestTimeout = 0;
server.on('clientError', (_err, socket) => socket.destroy());

function shutdown() {
  server.close();
  server.closeAllConnections();
  pool.destroy().finally(() => process.exit(0));
  setTimeout(() => process.exit(0), 1_000).unref();
}
process.once('SIGTERM', shutdown);
process.once('SIGINT', shutdown);

server.listen(Number(values.port), values.host, () => {
  const { port } = server.address();
  process.stdout.write(`floor proxy listening on http://${values.host}:${port} -> ${upstream.origin}\n`);
});
