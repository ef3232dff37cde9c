/**
 * Bounded `tenant` label values for Prometheus: the biggest spenders by name, everyone else as
 * `__other__`.
 *
 * Spend per tenant is tracked in a Space-Saving sketch (a fixed number of counters; a tenant not
 * in it replaces the smallest one and inherits its count as its possible error). A tenant gets
 * its own label value once its guaranteed spend (count minus error) puts it among the top `topN`
 * (ties go to the tenants ranked before), is at least 1/capacity of all spend seen (a tenant
 * above that share is always tracked by the sketch), and spans more than one request the sketch
 * remembers: one large request, or a long tail of tenants passing through the sketch, does not
 * take one of the few label values by luck. A label, once given, is
 * kept for the life of the process (a series that comes and goes would break `rate()`), and at
 * most `maxLabels` are ever given: the `tenant` label has at most `maxLabels + 1` values, whatever
 * the traffic. A tenant's requests before it qualified stay counted under `__other__`.
 */

/** The label value of every tenant without one of its own. */
export const OTHER_TENANTS = '__other__';

export interface TenantLabelerOptions {
  /** How many top spenders may be named (0: everything is `__other__`). */
  topN: number;
  /** Counters in the sketch; default max(256, 8 * topN). */
  capacity?: number;
  /** Hard cap on named tenants over the process lifetime; default 2 * topN. */
  maxLabels?: number;
}

interface Entry {
  id: string;
  count: number;
  /** What the entry may have inherited from the one it replaced. */
  error: number;
  /** Position in the heap. */
  at: number;
}

export class TenantLabeler {
  readonly topN: number;
  readonly capacity: number;
  readonly maxLabels: number;
  /** Min-heap by count: the root is the entry a new tenant replaces. */
  private readonly heap: Entry[] = [];
  private readonly entries = new Map<string, Entry>();
  private readonly labels = new Set<string>();
  private total = 0;

  constructor(opts: TenantLabelerOptions) {
    if (!Number.isInteger(opts.topN) || opts.topN < 0) throw new RangeError('topN must be a non-negative integer');
    this.topN = opts.topN;
    this.capacity = Math.max(opts.capacity ?? Math.max(256, 8 * opts.topN), opts.topN, 1);
    this.maxLabels = Math.max(opts.maxLabels ?? 2 * opts.topN, opts.topN);
  }

  /** The tenant's label value now (its id once it has a label of its own, else `__other__`). */
  label(tenantId: string): string {
    return this.labels.has(tenantId) ? tenantId : OTHER_TENANTS;
  }

  /** Adds spend (any non-negative weight, e.g. pico-dollars) and returns the tenant's label value. */
  record(tenantId: string, weight: number): string {
    if (weight > 0 && Number.isFinite(weight)) {
      this.total += weight;
      const entry = this.add(tenantId, weight);
      if (!this.labels.has(tenantId) && this.labels.size < this.maxLabels && this.qualifies(entry, weight)) this.labels.add(tenantId);
    }
    return this.label(tenantId);
  }

  /** The tenants with a label of their own. */
  named(): string[] {
    return [...this.labels];
  }

  /** The sketch's view of the biggest spenders, largest first (estimates; for tests and diagnostics). */
  top(n = this.topN): Array<{ tenantId: string; spend: number; error: number }> {
    return [...this.heap]
      .sort((a, b) => b.count - b.error - (a.count - a.error))
      .slice(0, n)
      .map((e) => ({ tenantId: e.id, spend: e.count, error: e.error }));
  }

  private qualifies(entry: Entry, weight: number): boolean {
    if (this.topN === 0 || entry.id === OTHER_TENANTS) return false;
    const guaranteed = entry.count - entry.error;
    if (guaranteed <= weight) return false; // its first request the sketch knows of
    if (guaranteed * this.capacity < this.total) return false;
    if (this.heap.length <= this.topN) return true;
    let above = 0;
    for (const e of this.heap) {
      if (e !== entry && e.count - e.error >= guaranteed && ++above >= this.topN) return false;
    }
    return true;
  }

  private add(id: string, weight: number): Entry {
    let entry = this.entries.get(id);
    if (entry) {
      entry.count += weight;
    } else if (this.heap.length < this.capacity) {
      entry = { id, count: weight, error: 0, at: this.heap.length };
      this.heap.push(entry);
      this.entries.set(id, entry);
      this.up(entry.at);
      return entry;
    } else {
      entry = this.heap[0] as Entry;
      this.entries.delete(entry.id);
      entry.id = id;
      entry.error = entry.count;
      entry.count += weight;
      this.entries.set(id, entry);
    }
    this.down(entry.at);
    return entry;
  }

  private up(i: number): void {
    const heap = this.heap;
    const e = heap[i] as Entry;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = heap[p] as Entry;
      if (parent.count <= e.count) break;
      heap[i] = parent;
      parent.at = i;
      i = p;
    }
    heap[i] = e;
    e.at = i;
  }

  private down(i: number): void {
    const heap = this.heap;
    const n = heap.length;
    const e = heap[i] as Entry;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && (heap[r] as Entry).count < (heap[l] as Entry).count ? r : l;
      const child = heap[c] as Entry;
      if (child.count >= e.count) break;
      heap[i] = child;
      child.at = i;
      i = c;
    }
    heap[i] = e;
    e.at = i;
  }
}
