/**
 * Guards every route gets from the app (src/http/app.ts), whatever its own validation:
 *
 * - JSON bodies nested deeper than `server.maxJsonDepth` are refused before they are parsed
 *   (src/wire/json-depth.ts); the others are parsed by Fastify's own parser (same
 *   prototype-poisoning rules);
 * - a query parameter given more than once (`?tenant_id=a&tenant_id=b`, which the query parser
 *   turns into an array that no route expects) is refused with a 400 naming it. No route takes a
 *   repeated parameter: lists are comma-separated (`group_by=model,day`).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { GatewayError } from '../errors.js';
import { findTooDeepInText, jsonTooDeepError } from '../wire/json-depth.js';

export function jsonBodyParser(app: FastifyInstance, maxDepth: number): void {
  const parse = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const tooDeep = findTooDeepInText(body as string, maxDepth);
    if (tooDeep !== undefined) return done(jsonTooDeepError(tooDeep, maxDepth), undefined);
    parse(request, body as string, done);
  });
}

/** preValidation hook: 400 for a query parameter given more than once. */
export async function rejectRepeatedQueryParams(request: FastifyRequest): Promise<void> {
  const query = request.query;
  if (typeof query !== 'object' || query === null) return;
  for (const [name, value] of Object.entries(query as Record<string, unknown>)) {
    if (Array.isArray(value)) {
      const shown = name.slice(0, 64);
      throw new GatewayError('invalid_value', `Invalid value for '${shown}': the query parameter is given ${value.length} times; give it once.`, {
        param: shown,
      });
    }
  }
}
