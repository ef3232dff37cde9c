/** Tables for the console (aligned) and for Markdown. */

export function markdownTable(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

export function textTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

/** A number with fixed decimals, or "n/a". */
export function fmt(v: number | undefined, decimals = 2): string {
  return v === undefined || !Number.isFinite(v) ? 'n/a' : v.toFixed(decimals);
}

/** A signed difference, e.g. "+0.42". */
export function fmtDelta(v: number | undefined, decimals = 2): string {
  if (v === undefined || !Number.isFinite(v)) return 'n/a';
  return `${v >= 0 ? '+' : ''}${v.toFixed(decimals)}`;
}
