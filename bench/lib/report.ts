/**
 * The report document every scenario builds once: a title, context lines (when and where it ran)
 * and blocks (headings, paragraphs, lists, tables). One renderer turns it into Markdown (the
 * scenario's section of bench/RESULTS.md) and into plain text (the console summary); the raw JSON
 * in bench/results/ takes the verdicts and caveats the document shows.
 */
import { describeMachine, type MachineInfo } from './results.js';
import type { Verdict } from './scenario.js';
import { markdownTable, textTable } from './table.js';

export interface Table {
  columns: string[];
  rows: string[][];
}

export type Block =
  | { kind: 'heading'; text: string; level: 3 | 4 }
  | { kind: 'text'; text: string }
  | { kind: 'list'; items: string[] }
  | ({ kind: 'table' } & Table);

export interface ReportDoc {
  /** The section's title (`## ` in Markdown). */
  title: string;
  /** Lines right under the title (Markdown: one paragraph with a line break between them). */
  context: string[];
  blocks: Block[];
}

/** One column of a table: its title and how a row fills it. */
export interface Column<R> {
  title: string;
  cell(row: R): string;
}

export const heading = (text: string, level: 3 | 4 = 3): Block => ({ kind: 'heading', text, level });
export const text = (t: string): Block => ({ kind: 'text', text: t });
export const list = (items: string[]): Block => ({ kind: 'list', items });
export const table = (columns: string[], rows: string[][]): Block => ({ kind: 'table', columns, rows });

export function column<R>(title: string, cell: (row: R) => string): Column<R> {
  return { title, cell };
}

/** A table of `rows`, one cell per column. */
export function tableOf<R>(rows: readonly R[], columns: Column<NoInfer<R>>[]): Block {
  return table(
    columns.map((c) => c.title),
    rows.map((r) => columns.map((c) => c.cell(r))),
  );
}

/** A heading and what follows it. */
export function section(title: string, ...blocks: Block[]): Block[] {
  return [heading(title), ...blocks];
}

/** "Date: …" and "Machine: …", the context of most reports. */
export function dateAndMachine(at: { date: Date; machine: MachineInfo }): string[] {
  return [`Date: ${at.date.toISOString()}`, `Machine: ${describeMachine(at.machine)}`];
}

/** The usual report: its title, "Date" and "Machine", the method as a list, then `blocks`. */
export function methodDoc(title: string, at: { date: Date; machine: MachineInfo }, method: string[], blocks: Block[]): ReportDoc {
  return { title, context: dateAndMachine(at), blocks: [list(method), ...blocks] };
}

export function verdictTable(verdicts: Verdict[]): Block {
  return table(
    ['target', 'goal', 'measured', 'verdict'],
    verdicts.map((v) => [v.name, v.target, v.actual, `${v.pass ? 'PASS' : 'MISS'}${v.note ? ` (${v.note})` : ''}`]),
  );
}

/**
 * The closing sections most reports share: the verdicts ("Targets"), the checks (lines and
 * tables under "Checks", when there are any) and the caveats (when there are any).
 */
export function closing(o: { verdicts: Verdict[]; checks?: Block[]; caveats: string[] }): Block[] {
  return [
    ...section('Targets', verdictTable(o.verdicts)),
    ...(o.checks?.length ? section('Checks', ...o.checks) : []),
    ...(o.caveats.length ? section('Caveats', list(o.caveats)) : []),
  ];
}

function blockMarkdown(b: Block): string {
  switch (b.kind) {
    case 'heading':
      return `${'#'.repeat(b.level)} ${b.text}`;
    case 'text':
      return b.text;
    case 'list':
      return b.items.map((i) => `- ${i}`).join('\n');
    case 'table':
      return markdownTable(b.columns, b.rows);
  }
}

/** Plain text: no Markdown emphasis. */
const plain = (s: string) => s.replace(/\*\*/g, '');

function blockText(b: Block): string {
  switch (b.kind) {
    case 'heading':
      return `${plain(b.text)}\n${(b.level === 3 ? '-' : '·').repeat(plain(b.text).length)}`;
    case 'text':
      return plain(b.text);
    case 'list':
      return b.items.map((i) => `- ${plain(i)}`).join('\n');
    case 'table':
      return textTable(b.columns, b.rows.map((r) => r.map(plain)));
  }
}

/** Blocks that render to nothing (a list without items) are left out. */
const present = (b: Block) => b.kind !== 'list' || b.items.length > 0;

/** The scenario's section of bench/RESULTS.md (without its markers). */
export function toMarkdown(doc: ReportDoc): string {
  const head = [`## ${doc.title}`, ...(doc.context.length ? [doc.context.join('  \n')] : [])];
  return [...head, ...doc.blocks.filter(present).map(blockMarkdown)].join('\n\n');
}

/** The console summary. */
export function toText(doc: ReportDoc): string {
  const title = plain(doc.title);
  const head = [`${title}\n${'='.repeat(title.length)}`, ...(doc.context.length ? [doc.context.join('\n')] : [])];
  return [...head, ...doc.blocks.filter(present).map(blockText)].join('\n\n');
}

/** Blocks as plain text, without a title (e.g. a profile printed on its own). */
export function blocksToText(blocks: Block[]): string {
  return blocks.filter(present).map(blockText).join('\n\n');
}
