/** `GET /admin/v1/usage`: the ledger grouped by tenant, key, user, model, route or day (JSON, or CSV). */
import type { FastifyInstance } from 'fastify';
import { type UsageParams, parseUsageQuery, rowToJson, totalOf, usageCsv } from '../../metering/usage-report.js';
import type { LedgerWriter } from '../../metering/ledger-writer.js';
import type { Ledger } from '../../storage/types.js';

export interface UsageRoutesOptions {
  ledger: Ledger;
  /** Flushed before reading, so a report includes every request answered so far. */
  writer: Pick<LedgerWriter, 'flush'>;
}

export async function usageRoutes(app: FastifyInstance, opts: UsageRoutesOptions): Promise<void> {
  app.get<{ Querystring: UsageParams }>('/usage', async (request, reply) => {
    const query = parseUsageQuery(request.query);
    await opts.writer.flush();
    const rows = await opts.ledger.aggregate(query);
    if (/\btext\/csv\b/.test(request.headers.accept ?? '')) {
      reply.type('text/csv; charset=utf-8').header('content-disposition', 'attachment; filename="tollgate-usage.csv"');
      return usageCsv(rows, query.groupBy);
    }
    const total = rowToJson(totalOf(rows), []);
    return {
      object: 'usage_report',
      from: new Date(query.from).toISOString(),
      to: new Date(query.to).toISOString(),
      group_by: query.groupBy,
      data: rows.map((r) => rowToJson(r, query.groupBy)),
      total,
    };
  });
}
