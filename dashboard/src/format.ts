/** Number formatting for cards, axes and tables. */

export function usd(v: number | string | null | undefined, digits = 4): string {
  if (v === null || v === undefined || v === '') return '–';
  const n = typeof v === 'string' ? Number(v) : v;
  if (!Number.isFinite(n)) return '–';
  if (n !== 0 && Math.abs(n) < 0.0001) return `$${n.toExponential(2)}`;
  return `$${n.toFixed(n >= 100 ? 2 : digits)}`;
}

export function ms(v: number | null | undefined): string {
  if (v === null || v === undefined) return '–';
  return v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${Math.round(v)} ms`;
}

export function pct(v: number | null | undefined): string {
  return v === null || v === undefined ? '–' : `${(v * 100).toFixed(1)}%`;
}

export function count(v: number | null | undefined): string {
  if (v === null || v === undefined) return '–';
  if (Math.abs(v) >= 1e6) return `${(v / 1e6).toFixed(1)}M`;
  if (Math.abs(v) >= 1e4) return `${(v / 1e3).toFixed(1)}k`;
  return Number.isInteger(v) ? String(v) : v.toFixed(2);
}

export function time(v: string | number): string {
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? String(v) : d.toLocaleTimeString();
}
