/**
 * The shape of src/ that docs/ARCHITECTURE.md describes, checked: files split by job (none over
 * 400 lines), a short composition root, and no value-import cycle between the folders of src/
 * (a type-only import is erased at compile time and does not count).
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { folderCycles, sourceFiles, valueImports } from './import-graph.js';

const SRC = resolve(import.meta.dirname, '../../src');
const lines = (file: string) => readFileSync(file, 'utf8').split('\n').length - 1;

describe('architecture', () => {
  it('has no file in src/ over 400 lines, tests included', () => {
    const all = [...sourceFiles(SRC), ...testFiles(SRC)];
    const long = all.map((f) => ({ file: relative(SRC, f), lines: lines(f) })).filter((f) => f.lines > 400);
    expect(long).toEqual([]);
  });

  it('keeps the composition root under 150 lines', () => {
    expect(lines(join(SRC, 'main.ts'))).toBeLessThan(150);
  });

  it('has no value-import cycle between the folders of src/', () => {
    expect(folderCycles(valueImports(SRC))).toEqual([]);
  });

  it('finds a cycle when there is one (the check can fail)', () => {
    const cycles = folderCycles([
      { from: 'a/x.ts', to: 'b/y.ts' },
      { from: 'b/y.ts', to: 'a/z.ts' },
      { from: 'c/w.ts', to: 'a/x.ts' },
    ]);
    expect(cycles).toEqual([['a', 'b']]);
  });
});

function testFiles(root: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(root)) {
    const p = join(root, name);
    if (statSync(p).isDirectory()) out.push(...testFiles(p));
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}
