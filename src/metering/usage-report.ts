/**
 * Usage reports over the ledger, shared by `GET /admin/v1/usage` and `tollgate usage`: parsing the
 * query (the same names in both), and rendering rows as JSON objects, CSV or a table.
 */
import { GatewayError } from '../errors.js';
import type { UsageGroupBy, UsageQuery, UsageRow } from '../storage/types.js';
import { formatUsd } from './cost.js';
import { parseTimeParam as parseTime } from '../util/time.js';

export const GROUP_BY: readonly UsageGroupBy[] = ['tenant', 'key', 'user', 'model', 'route', 'day'];
const DAY_MS = 86_400_000;

export interface UsageParams {
  from?: string | undefined;
  to?: string | undefined;
  group_by?: string | undefined;
  tenant_id?: string | undefined;
  key_id?: string | undefined;
  user_id?: string | undefined;
  model?: string | undefined;
}

/** Defaults: the last 30 days up to now, grouped by tenant. */
export function parseUsageQuery(p: UsageParams, now: number = Date.now()): UsageQuery {
  const to = p.to ? parseTime(p.to, 'to') : now;
  const from = p.from ? parseTime(p.from, 'from') : to - 30 * DAY_MS;
  if (from >= to) throw new GatewayError('invalid_value', `from (${new Date(from).toISOString()}) must be before to (${new Date(to).toISOString()})`, { param: 'from' });
  const groupBy = (p.group_by ?? 'tenant')
    .split(',')
    .map((g) => g.trim())
    .filter(Boolean);
  for (const g of groupBy) {
    if (!GROUP_BY.includes(g as UsageGroupBy)) {
      throw new GatewayError('invalid_value', `group_by: unknown dimension '${g}' (use ${GROUP_BY.join(', ')})`, { param: 'group_by' });
    }
  }
  return {
    from,
    to,
    groupBy: [...new Set(groupBy)] as UsageGroupBy[],
    ...(p.tenant_id ? { tenantId: p.tenant_id } : {}),
    ...(p.key_id ? { keyId: p.key_id } : {}),
    ...(p.user_id ? { userId: p.user_id } : {}),
    ...(p.model ? { model: p.model } : {}),
  };
}

export interface UsageRowJson {
  [dimension: string]: string | number;
  requests: number;
  errors: number;
  prompt_tokens: number;
  completion_tokens: number;
  /** Exact decimal USD. */
  cost_usd: string;
  saved_usd: string;
}

export function rowToJson(row: UsageRow, groupBy: readonly UsageGroupBy[]): UsageRowJson {
  const out: UsageRowJson = {
    requests: row.requests,
    errors: row.errors,
    prompt_tokens: row.promptTokens,
    completion_tokens: row.completionTokens,
    cost_usd: formatUsd(row.costPico),
    saved_usd: formatUsd(row.savedPico),
  };
  const ordered: UsageRowJson = {} as UsageRowJson;
  for (const g of groupBy) ordered[g] = row.group[g] ?? '';
  return Object.assign(ordered, out);
}

export function totalOf(rows: readonly UsageRow[]): UsageRow {
  const t: UsageRow = { group: {}, requests: 0, errors: 0, promptTokens: 0, completionTokens: 0, costPico: 0, savedPico: 0 };
  for (const r of rows) {
    t.requests += r.requests;
    t.errors += r.errors;
    t.promptTokens += r.promptTokens;
    t.completionTokens += r.completionTokens;
    t.costPico += r.costPico;
    t.savedPico += r.savedPico;
  }
  return t;
}

export function usageColumns(groupBy: readonly UsageGroupBy[]): string[] {
  return [...groupBy, 'requests', 'errors', 'prompt_tokens', 'completion_tokens', 'cost_usd', 'saved_usd'];
}

function csvCell(v: string | number): string {
  const s = String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function usageCsv(rows: readonly UsageRow[], groupBy: readonly UsageGroupBy[]): string {
  const cols = usageColumns(groupBy);
  const lines = [cols.join(',')];
  for (const r of rows) {
    const j = rowToJson(r, groupBy);
    lines.push(cols.map((c) => csvCell(j[c] ?? '')).join(','));
  }
  return `${lines.join('\n')}\n`;
}
