/**
 * A chat request's context for unit tests that run stages without HTTP (src/pipeline/stages/
 * invoke*.test.ts, src/observability/tracing.test.ts): built by createContext, as the route
 * builds it, with a sink that discards what it is sent.
 */
import type { Logger } from '../../src/observability/logger.js';
import { createLogger } from '../../src/observability/logger.js';
import { type RequestContext, createContext } from '../../src/pipeline/context.js';
import type { Deployment } from '../../src/routing/catalog.js';

export interface TestContextOptions {
  id?: string;
  eventId?: string;
  headers?: Record<string, string>;
  /** Fields added to (or replacing) the body's model 'm' and one user message 'hi'. */
  body?: Record<string, unknown>;
  /** The deployments to try (what the route stage would have set). */
  chain?: Deployment[];
  log?: Logger;
}

export function chatContext(opts: TestContextOptions = {}): RequestContext {
  const ctx = createContext({
    id: opts.id ?? 'req_test',
    ...(opts.eventId !== undefined ? { eventId: opts.eventId } : {}),
    operation: 'chat',
    route: '/v1/chat/completions',
    headers: opts.headers ?? {},
    body: { model: 'm', messages: [{ role: 'user', content: 'hi' }], ...opts.body },
    sink: { signal: new AbortController().signal, committed: false, sendJson() {}, openStream: () => ({ send: async () => {}, end() {} }) },
    log: opts.log ?? createLogger('silent'),
  });
  if (opts.chain) ctx.chain = opts.chain;
  return ctx;
}
