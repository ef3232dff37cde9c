/**
 * The live dashboard: its static assets at /dashboard (built by scripts/build-dashboard.mjs into
 * dist/dashboard; no CDN, works offline) and its data under /admin/v1/dashboard (admin key):
 *
 *   GET /admin/v1/dashboard/stream   SSE: a `snapshot` event every ~2 s (chart series + current values)
 *   GET /admin/v1/dashboard/summary  top tenants, users and models by cost (24 h), budgets used
 *
 * The page itself is public (it only asks for the admin key); every number comes from the
 * admin endpoints. One timer builds each snapshot once for all open streams, only while some are open.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Authenticator } from '../../auth/authenticator.js';
import { extractKey } from '../../auth/keys.js';
import { GatewayError } from '../../errors.js';
import type { DashboardSummary } from '../../observability/dashboard-summary.js';
import type { LiveSeries, LiveSnapshot, LiveStats } from '../../observability/live-stats.js';

/** One row of a signal table (drift scores, alerts, abuse flags...), rendered as it is. */
export interface DashboardSignal {
  name: string;
  value: string | number | null;
  /** e.g. ok, warning, firing, flagged; styled by the UI when it knows the word. */
  state?: string | undefined;
}

/** Signals other parts of the gateway provide; each table is shown as "not configured" when absent. */
export interface DashboardSignals {
  drift?: DashboardSignal[] | undefined;
  alerts?: DashboardSignal[] | undefined;
  abuse?: DashboardSignal[] | undefined;
}

export interface QueueDepth {
  priority: number;
  queued: number;
  oldestAgeSeconds: number;
}

export interface DashboardRoutesOptions {
  authenticator: Pick<Authenticator, 'authenticate'>;
  live: Pick<LiveStats, 'series' | 'snapshot'>;
  summary: () => Promise<DashboardSummary>;
  queueStats?: (() => Promise<QueueDepth[]>) | undefined;
  signals?: (() => Promise<DashboardSignals> | DashboardSignals) | undefined;
  /** Where the built assets are (default: dist/dashboard of this package). */
  assetsDir?: string | undefined;
  streamEveryMs?: number | undefined;
}

/** One `snapshot` event of the stream. */
export interface DashboardSnapshot {
  at: number;
  window_minutes: number;
  series: LiveSeries;
  /** The last minute. */
  current: LiveSnapshot;
  /** The last hour. */
  hour: LiveSnapshot;
  queue: QueueDepth[] | null;
  signals: DashboardSignals | null;
}

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
};
const HASHED = /-[A-Z0-9]{8}\.[a-z]+$/;
const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'content-security-policy': "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'",
};

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
  cache: string;
}

/** The package root's dist/dashboard (this file runs from src/ under tsx and from dist/ when built). */
export function defaultAssetsDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return join(dir, 'dist', 'dashboard');
}

/** Every built file, read once: only these names are ever served (no path ever reaches the disk). */
function loadAssets(dir: string): Map<string, Asset> | undefined {
  if (!existsSync(join(dir, 'index.html'))) return undefined;
  const assets = new Map<string, Asset>();
  for (const name of readdirSync(dir)) {
    const type = CONTENT_TYPES[extname(name)];
    if (!type || !statSync(join(dir, name)).isFile()) continue;
    const body = readFileSync(join(dir, name));
    const etag = `"${createHash('sha1').update(body).digest('base64url').slice(0, 20)}"`;
    assets.set(name, { body, type, etag, cache: HASHED.test(name) ? 'public, max-age=31536000, immutable' : 'no-cache' });
  }
  return assets;
}

/** The chart window, in minutes (query strings are not coerced: parsed here). */
function parseMinutes(value: string | undefined): number {
  if (value === undefined) return 15;
  const n = /^\d{1,3}$/.test(value) ? Number(value) : NaN;
  if (!(n >= 1 && n <= 60)) throw new GatewayError('invalid_value', `minutes must be a whole number from 1 to 60, got '${value}'`, { param: 'minutes' });
  return n;
}

export async function dashboardRoutes(app: FastifyInstance, opts: DashboardRoutesOptions): Promise<void> {
  const assetsDir = opts.assetsDir ?? defaultAssetsDir();
  let assets: Map<string, Asset> | undefined;

  function serve(request: FastifyRequest, reply: FastifyReply, name: string) {
    assets ??= loadAssets(assetsDir);
    if (!assets) throw new GatewayError('not_found', `The dashboard is not built (no ${join(assetsDir, 'index.html')}): run 'npm run build'.`);
    const asset = assets.get(name);
    if (!asset) throw new GatewayError('route_not_found', `Unknown route: GET /dashboard/${name}.`);
    reply.headers({ ...SECURITY_HEADERS, 'content-type': asset.type, 'cache-control': asset.cache, etag: asset.etag });
    if (request.headers['if-none-match'] === asset.etag) return reply.code(304).send();
    return reply.send(asset.body);
  }

  app.get('/dashboard', (_request, reply) => reply.redirect('/dashboard/', 302));
  app.get('/dashboard/', (request, reply) => serve(request, reply, 'index.html'));
  app.get<{ Params: { file: string } }>('/dashboard/:file', (request, reply) => serve(request, reply, request.params.file));

  const requireAdmin = async (request: FastifyRequest) => {
    const auth = await opts.authenticator.authenticate(extractKey(request.headers));
    if (auth.kind !== 'admin') throw new GatewayError('admin_required', 'This endpoint needs an admin key.');
  };

  // The summary reads the ledger: at most one read per 5 s, shared by every caller.
  let summary: { at: number; value: Promise<DashboardSummary> } | undefined;
  app.get('/admin/v1/dashboard/summary', { onRequest: requireAdmin }, async (_request, reply) => {
    if (!summary || Date.now() - summary.at > 5_000) {
      summary = { at: Date.now(), value: opts.summary() };
      summary.value.catch(() => (summary = undefined));
    }
    reply.header('cache-control', 'no-store');
    return summary.value;
  });

  const streams = new Map<() => void, { minutes: number; write: (chunk: string) => void }>();
  let timer: NodeJS.Timeout | undefined;

  async function snapshot(minutes: number): Promise<DashboardSnapshot> {
    const [queue, signals] = await Promise.all([
      opts.queueStats ? opts.queueStats().catch(() => null) : null,
      opts.signals ? Promise.resolve(opts.signals()).catch(() => null) : null,
    ]);
    const windowSec = minutes * 60;
    return {
      at: Date.now(),
      window_minutes: minutes,
      series: opts.live.series(windowSec, Math.max(1, Math.round(windowSec / 180))),
      current: opts.live.snapshot(60),
      hour: opts.live.snapshot(3600),
      queue,
      signals,
    };
  }

  async function tick(): Promise<void> {
    const byMinutes = new Map<number, Promise<string>>();
    for (const { minutes, write } of streams.values()) {
      let event = byMinutes.get(minutes);
      if (!event) {
        event = snapshot(minutes).then((s) => `event: snapshot\ndata: ${JSON.stringify(s)}\n\n`);
        byMinutes.set(minutes, event);
      }
      write(await event);
    }
  }

  app.get<{ Querystring: { minutes?: string } }>(
    '/admin/v1/dashboard/stream',
    { onRequest: requireAdmin },
    (request, reply) => {
      const minutes = parseMinutes(request.query.minutes);
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-store',
        'x-accel-buffering': 'no',
        'x-request-id': request.id,
      });
      const write = (chunk: string) => {
        if (!res.destroyed) res.write(chunk);
      };
      const end = () => {
        if (!streams.delete(end)) return;
        if (streams.size === 0) {
          clearInterval(timer);
          timer = undefined;
        }
        if (!res.destroyed) res.end();
      };
      streams.set(end, { minutes, write });
      res.once('close', end);
      snapshot(minutes).then(
        (s) => write(`event: snapshot\ndata: ${JSON.stringify(s)}\n\n`),
        (err: unknown) => request.log.warn({ err }, 'dashboard snapshot failed'),
      );
      if (!timer) {
        timer = setInterval(() => void tick().catch((err: unknown) => request.log.warn({ err }, 'dashboard snapshot failed')), opts.streamEveryMs ?? 2_000);
        timer.unref();
      }
    },
  );

  // Open streams end when the server closes (they would otherwise hold it open until the grace period).
  app.addHook('preClose', async () => {
    for (const end of [...streams.keys()]) end();
  });
}
