/**
 * OpenAI's list pages, as GET /v1/jobs, /v1/files and /v1/batches answer them: the `limit` and
 * `after` of the query string, and the `list` object (`data`, `first_id`, `last_id`, `has_more`).
 */
import { GatewayError } from '../../errors.js';

/** A listing's `limit` (1..max) and `after` from the query string; 400 naming the field. */
export function pageQuery(query: unknown, max = 100, fallback = 20): { after: string | undefined; limit: number } {
  const q = (query ?? {}) as Record<string, unknown>;
  let limit = fallback;
  if (q['limit'] !== undefined) {
    limit = typeof q['limit'] === 'string' && /^\d+$/.test(q['limit']) ? Number(q['limit']) : NaN;
    if (!Number.isInteger(limit) || limit < 1 || limit > max) {
      throw new GatewayError('invalid_value', `Invalid value for 'limit': must be an integer from 1 to ${max}.`, { param: 'limit' });
    }
  }
  const after = q['after'];
  if (after !== undefined && (typeof after !== 'string' || after === '')) {
    throw new GatewayError('invalid_value', "Invalid value for 'after': must be an id from a previous page.", { param: 'after' });
  }
  return { after: after as string | undefined, limit };
}

export function listObject<T extends { id: string }>(page: { data: T[]; hasMore: boolean }, render: (item: T) => Record<string, unknown>) {
  return {
    object: 'list',
    data: page.data.map(render),
    first_id: page.data[0]?.id ?? null,
    last_id: page.data.at(-1)?.id ?? null,
    has_more: page.hasMore,
  };
}
