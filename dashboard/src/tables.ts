/** Tables: top spenders, budgets, and the signal tables (drift, alerts, abuse). Text only, never HTML. */
import { count, pct, usd } from './format.js';
import type { BudgetUse, CacheVerificationRow, DashboardSummary, Signal, UsageRow } from './types.js';

export type Cell = string | Node;

export function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, ...children: Cell[]): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  node.append(...children);
  return node;
}

export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const node = document.getElementById(id);
  if (!node) throw new Error(`#${id} is missing from the page`);
  return node as T;
}

/** Replaces a tbody's rows; one row saying `empty` when there are none. */
export function fillRows(tbody: HTMLTableSectionElement, rows: Cell[][], empty: string): void {
  const columns = tbody.closest('table')?.querySelectorAll('thead th').length ?? 1;
  tbody.replaceChildren(
    ...(rows.length === 0
      ? [el('tr', { class: 'empty' }, el('td', { colspan: String(columns) }, empty))]
      : rows.map((cells) => el('tr', {}, ...cells.map((c) => el('td', {}, c))))),
  );
}

const spend = (r: UsageRow): Cell[] => [count(r.requests), count(r.errors), count(r.prompt_tokens + r.completion_tokens), usd(r.cost_usd), usd(r.saved_usd)];

export function renderSummary(s: DashboardSummary): void {
  fillRows(byId<HTMLTableSectionElement>('top-tenants-body'), s.top_tenants.map((r) => [String(r['tenant'] ?? ''), ...spend(r)]), 'No usage in the last 24 hours.');
  fillRows(
    byId<HTMLTableSectionElement>('top-users-body'),
    s.top_users.map((r) => [String(r['user'] ?? ''), String(r['tenant'] ?? ''), ...spend(r)]),
    'No end users in the last 24 hours.',
  );
  fillRows(byId<HTMLTableSectionElement>('top-models-body'), s.top_models.map((r) => [String(r['model'] ?? ''), ...spend(r)]), 'No usage in the last 24 hours.');
  renderBudgets(s.budgets);
}

function renderBudgets(budgets: BudgetUse[]): void {
  const rows = budgets.map((b) => {
    const fraction = Math.min(1, b.used_fraction);
    const meter = el('meter', {
      min: '0',
      max: '1',
      low: '0.5',
      high: '0.8',
      optimum: '0',
      value: String(fraction),
      'aria-label': `${b.tenant_name} ${b.period} budget used`,
    });
    return [b.tenant_name || b.tenant_id, b.period, usd(b.used_usd), usd(b.limit_usd), el('span', { class: 'budget' }, meter, ` ${pct(b.used_fraction)}`)];
  });
  fillRows(byId<HTMLTableSectionElement>('budgets-body'), rows, 'No tenant has a budget.');
}

/** Verified semantic caching per route (GET /admin/v1/cache); an error bound above the route's limit is flagged. */
export function renderCacheVerification(rows: CacheVerificationRow[] | undefined): void {
  const share = (v: number) => `${(v * 100).toFixed(2)}%`;
  fillRows(
    byId<HTMLTableSectionElement>('cache-verification-body'),
    (rows ?? []).map((r) => [
      r.route,
      share(r.max_error_rate),
      count(r.candidates),
      count(r.verified),
      pct(r.verification_rate),
      `${share(r.observed_disagreement)} (${count(r.disagreements)})`,
      share(r.estimated_error),
      el('span', { class: `state state-${r.error_bound > r.max_error_rate + 1e-9 ? 'firing' : 'ok'}` }, share(r.error_bound)),
    ]),
    'No route sets semantic.maxErrorRate.',
  );
}

/** A signal table; `undefined` rows: the gateway does not provide this signal. */
export function renderSignals(id: string, rows: Signal[] | undefined): void {
  const tbody = byId<HTMLTableSectionElement>(`${id}-body`);
  if (rows === undefined) {
    fillRows(tbody, [], 'Not configured.');
    return;
  }
  fillRows(
    tbody,
    rows.map((r) => [r.name, r.value === null ? '–' : typeof r.value === 'number' ? count(r.value) : r.value, el('span', { class: `state state-${(r.state ?? 'ok').replace(/[^a-z_-]/gi, '')}` }, r.state ?? '')]),
    'Nothing to report.',
  );
}
