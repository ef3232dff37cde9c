/**
 * The Fastify app: global hooks, validation, error rendering, then every capability's routes
 * (src/capabilities/), their admin routes inside the admin scope. Built by the composition root
 * (src/main.ts); holds no state of its own.
 */
import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify';
import type { Authenticator } from '../auth/authenticator.js';
import { extractKey } from '../auth/keys.js';
import type { Routes } from '../capabilities/capability.js';
import type { Config } from '../config/schema.js';
import { GatewayError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { IdempotencyStore } from '../storage/types.js';
import { errorHandler, sendGatewayError } from './error-handler.js';
import { idempotency } from './idempotency.js';
import { jsonBodyParser, rejectRepeatedQueryParams } from './request-guards.js';
import { adminScope } from './routes/admin.js';

export interface AppOptions {
  config: Config;
  log: Logger;
  /** Refuses a large body before it is read when its key is not valid (and scopes the admin API). */
  authenticator: Authenticator;
  idempotency: IdempotencyStore;
  isShuttingDown: () => boolean;
  /** The capabilities' routes, registered at the root. */
  routes: readonly Routes[];
  /** The capabilities' admin routes, under /admin/v1 behind the admin-key check. */
  adminRoutes: readonly Routes[];
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Bodies larger than this (or of unannounced length) are read only once the key is known. */
const PRE_AUTH_BODY_BYTES = 16 * 1024;

export async function buildApp(s: AppOptions): Promise<FastifyInstance> {
  const app: FastifyInstance = Fastify({
    loggerInstance: s.log as FastifyBaseLogger,
    // One log line per request is written by the settle stage; Fastify's own would double it.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: s.config.server.bodyLimitBytes,
    trustProxy: s.config.server.trustProxy,
    return503OnClosing: true,
    // The client's x-request-id is kept when it is sane; otherwise a fresh one.
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : `req_${randomUUID().replace(/-/g, '')}`;
    },
    ajv: { customOptions: { coerceTypes: false, allErrors: false, removeAdditional: false, allowUnionTypes: true } },
  });

  // The API speaks JSON only: other content types get a 415 that says so.
  app.removeContentTypeParser('text/plain');
  // Every route: JSON nested deeper than server.maxJsonDepth, and a repeated query parameter, are 400s.
  jsonBodyParser(app, s.config.server.maxJsonDepth);
  app.addHook('preValidation', rejectRepeatedQueryParams);
  // A request with a large (or unannounced) body is refused before its body is read when its
  // route is unknown (404) or, on /v1 and /admin, when its key is not valid (401): no key, no
  // megabytes read. Small bodies go on to the routes, which refuse them as well (and the pipeline
  // keeps the refusal in the request log). The routes authenticate again (from the auth cache).
  app.addHook('onRequest', async (request, reply) => {
    if (request.method === 'GET' || request.method === 'HEAD' || request.method === 'DELETE') return;
    const length = Number(request.headers['content-length']);
    if (Number.isFinite(length) && length <= PRE_AUTH_BODY_BYTES) return;
    try {
      // An unknown route is answered before its body too (`//v1/...`, `/V1/...`, anything else).
      if (request.is404) throw new GatewayError('route_not_found', `Unknown route: ${request.method} ${request.url.split('?')[0]}.`);
      if (!request.url.startsWith('/v1/') && !request.url.startsWith('/admin/')) return;
      await s.authenticator.authenticate(extractKey(request.headers));
    } catch (err) {
      reply.header('connection', 'close'); // the unread body is not drained
      throw err;
    }
  });
  // While shutting down, every answer closes its connection: an idle keep-alive socket would hold
  // the process for the whole grace period (streams: see HttpSink).
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (s.isShuttingDown()) reply.header('connection', 'close');
    done(null, payload);
  });
  app.setErrorHandler(errorHandler(s.config.server.bodyLimitBytes));
  app.setNotFoundHandler((request, reply) =>
    sendGatewayError(request, reply, new GatewayError('route_not_found', `Unknown route: ${request.method} ${request.url.split('?')[0]}.`)),
  );

  // Before the routes: it adds its hooks to every POST route as it is registered.
  idempotency(app, { store: s.idempotency, ...s.config.idempotency, log: s.log });

  for (const r of s.routes) await r.register(app);
  await app.register(adminScope, {
    prefix: '/admin/v1',
    authenticator: s.authenticator,
    register: async (admin) => {
      for (const r of s.adminRoutes) await r.register(admin);
    },
  });
  return app;
}
