/** `tollgate usage`: the usage report of GET /admin/v1/usage, read from the store, as a table (or CSV/JSON). */
import type { Config } from '../config/schema.js';
import { parseUsageQuery, rowToJson, totalOf, usageColumns, usageCsv } from '../metering/usage-report.js';
import { openStorage } from '../storage/index.js';
import { printTable } from './table.js';

export interface UsageFlags {
  from?: string;
  to?: string;
  'group-by'?: string;
  tenant?: string;
  key?: string;
  user?: string;
  model?: string;
  csv?: boolean;
  json?: boolean;
}

export async function usageCommand(config: Config, flags: UsageFlags): Promise<void> {
  const query = parseUsageQuery({
    from: flags.from,
    to: flags.to,
    group_by: flags['group-by'],
    tenant_id: flags.tenant,
    key_id: flags.key,
    user_id: flags.user,
    model: flags.model,
  });
  const storage = await openStorage(config);
  try {
    const rows = await storage.ledger.aggregate(query);
    if (flags.csv) return void process.stdout.write(usageCsv(rows, query.groupBy));
    if (flags.json) return void process.stdout.write(`${JSON.stringify(rows.map((r) => rowToJson(r, query.groupBy)), null, 2)}\n`);
    process.stdout.write(`Usage from ${new Date(query.from).toISOString()} to ${new Date(query.to).toISOString()}\n\n`);
    const cols = usageColumns(query.groupBy);
    const total = { ...rowToJson(totalOf(rows), []), ...Object.fromEntries(query.groupBy.map((g, i) => [g, i === 0 ? 'TOTAL' : ''])) };
    const table = [...rows.map((r) => rowToJson(r, query.groupBy)), ...(rows.length > 1 ? [total] : [])];
    printTable(cols, table.map((r) => cols.map((c) => String((r as Record<string, unknown>)[c] ?? ''))));
  } finally {
    await storage.close();
  }
}
