/** The request log table: filters, pages (cursor), and what the API says when it refuses. */
import { ApiError, getJson } from './api.js';
import { count, ms, time, usd } from './format.js';
import { type Cell, byId, el, fillRows } from './tables.js';
import type { RequestPage, RequestRow } from './types.js';

const FILTERS = ['tenant_id', 'user', 'model', 'status', 'cache', 'min_latency_ms'] as const;

export class RequestLog {
  private cursor: string | null = null;
  private rows: RequestRow[] = [];
  private loading: AbortController | undefined;

  constructor(private readonly key: () => string) {
    const form = byId<HTMLFormElement>('log-filters');
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      void this.load(false);
    });
    form.addEventListener('reset', () => setTimeout(() => void this.load(false), 0));
    byId('log-more').addEventListener('click', () => void this.load(true));
  }

  private query(more: boolean): string {
    const params = new URLSearchParams({ limit: '50' });
    const form = byId<HTMLFormElement>('log-filters');
    for (const name of FILTERS) {
      const input = form.elements.namedItem(name) as HTMLInputElement | HTMLSelectElement | null;
      const value = input?.value.trim() ?? '';
      if (value) params.set(name, value);
    }
    if (more && this.cursor) params.set('cursor', this.cursor);
    return params.toString();
  }

  async load(more: boolean): Promise<void> {
    this.loading?.abort();
    const controller = new AbortController();
    this.loading = controller;
    const status = byId('log-status');
    status.textContent = 'Loading…';
    try {
      const page = await getJson<RequestPage>(this.key(), `/admin/v1/requests?${this.query(more)}`, controller.signal);
      this.rows = more ? [...this.rows, ...page.data] : page.data;
      this.cursor = page.has_more ? page.next_cursor : null;
      this.render();
      status.textContent = `${this.rows.length} request${this.rows.length === 1 ? '' : 's'}${page.has_more ? ' (more available)' : ''}.`;
      byId<HTMLButtonElement>('log-more').hidden = !page.has_more;
    } catch (err) {
      if (controller.signal.aborted) return;
      const message =
        err instanceof ApiError && err.status === 404 ? 'The request log is not available on this gateway.' : `Could not load the request log: ${(err as Error).message}`;
      status.textContent = message;
    }
  }

  private render(): void {
    const rows: Cell[][] = this.rows.map((r) => [
      time(r.created_at),
      r.tenant_id ?? '–',
      r.user ?? '–',
      r.served_model && r.served_model !== r.model ? `${r.model} → ${r.served_model}` : r.model,
      r.tier ?? '–',
      el('span', { class: r.status >= 500 ? 'status bad' : r.status >= 400 ? 'status warn' : 'status ok' }, String(r.status), r.error_code ? ` ${r.error_code}` : ''),
      r.cache,
      ms(r.latency_ms),
      ms(r.ttft_ms),
      count(r.prompt_tokens + r.completion_tokens),
      usd(r.cost_usd, 6),
      String(r.attempts),
      el('code', {}, r.id),
    ]);
    fillRows(byId<HTMLTableSectionElement>('log-body'), rows, 'No request matches these filters.');
  }
}
