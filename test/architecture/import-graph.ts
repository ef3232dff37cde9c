/**
 * The import graph of src/: which files import which, by value (a type-only import is erased at
 * compile time and cannot form a cycle at run time). Used by the architecture test and by
 * `npx tsx test/architecture/import-graph.ts` to print the folder cycles.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';

export interface ImportEdge {
  from: string;
  to: string;
}

export function sourceFiles(root: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(root)) {
    const p = join(root, name);
    if (statSync(p).isDirectory()) out.push(...sourceFiles(p));
    else if (name.endsWith('.ts') && !name.endsWith('.test.ts') && !name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** Value imports (static, re-exports and dynamic `import()`) between files of `root`, as paths relative to it. */
export function valueImports(root: string): ImportEdge[] {
  const edges: ImportEdge[] = [];
  for (const file of sourceFiles(root)) {
    const sf = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022, true);
    const add = (spec: string) => {
      if (!spec.startsWith('.')) return;
      const target = resolve(dirname(file), spec.replace(/\.js$/, '.ts'));
      edges.push({ from: relative(root, file), to: relative(root, target) });
    };
    const visit = (node: ts.Node) => {
      if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
        const c = node.importClause;
        const typeOnly =
          c !== undefined &&
          (c.isTypeOnly ||
            (c.name === undefined &&
              c.namedBindings !== undefined &&
              ts.isNamedImports(c.namedBindings) &&
              c.namedBindings.elements.length > 0 &&
              c.namedBindings.elements.every((e) => e.isTypeOnly)));
        if (!typeOnly) add(node.moduleSpecifier.text);
      } else if (ts.isExportDeclaration(node) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
        if (!node.isTypeOnly) add(node.moduleSpecifier.text);
      } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
        const arg = node.arguments[0];
        if (arg && ts.isStringLiteral(arg)) add(arg.text);
      }
      ts.forEachChild(node, visit);
    };
    visit(sf);
  }
  return edges;
}

/** The folder of a file: its first directory under src/ (a file at the top is a node of its own: main.ts, errors.ts). */
export function folderOf(path: string): string {
  const i = path.indexOf(sep);
  return i < 0 ? path : path.slice(0, i);
}

/** Cycles between folders: for each pair of folders that reach each other by value imports, one file-level witness path. */
export function folderCycles(edges: ImportEdge[]): string[][] {
  const graph = new Map<string, Set<string>>();
  for (const e of edges) {
    const a = folderOf(e.from);
    const b = folderOf(e.to);
    if (a === b) continue;
    if (!graph.has(a)) graph.set(a, new Set());
    graph.get(a)?.add(b);
  }
  // Strongly connected components (Tarjan): every component of more than one folder is a cycle.
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const out: string[][] = [];
  const strong = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!idx.has(w)) {
        strong(w);
        low.set(v, Math.min(low.get(v) as number, low.get(w) as number));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v) as number, idx.get(w) as number));
    }
    if (low.get(v) === idx.get(v)) {
      const comp: string[] = [];
      let w: string;
      do {
        w = stack.pop() as string;
        on.delete(w);
        comp.push(w);
      } while (w !== v);
      if (comp.length > 1) out.push(comp.sort());
    }
  };
  for (const v of graph.keys()) if (!idx.has(v)) strong(v);
  return out;
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split(sep).pop() as string)) {
  const root = resolve(process.argv[2] ?? 'src');
  const edges = valueImports(root);
  const cycles = folderCycles(edges);
  for (const c of cycles) {
    console.log(`cycle: ${c.join(' <-> ')}`);
    const set = new Set(c);
    for (const e of edges) {
      const a = folderOf(e.from);
      const b = folderOf(e.to);
      if (a !== b && set.has(a) && set.has(b)) console.log(`  ${e.from} -> ${e.to}`);
    }
  }
  if (cycles.length === 0) console.log('no value-import cycle between folders');
}
