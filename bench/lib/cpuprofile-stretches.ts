/**
 * Long uninterrupted stretches of a V8 .cpuprofile: for each function, the longest runs of
 * consecutive samples whose stack contains it. A function that holds the main thread for tens of
 * milliseconds at a time (a big synchronous transaction, a long microtask chain) shows up here even
 * when its share of the CPU is small, and it is what a latency tail (p99.9, max) is made of.
 *
 * Sampling is coarse (node --cpu-prof samples about every 1 ms): two calls separated by a shorter
 * gap (e.g. two batches with a setImmediate between them) may read as one stretch.
 *
 *   npx tsx bench/lib/cpuprofile-stretches.ts <file.cpuprofile> [skipFirstSeconds=3] [top=20]
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

export interface Stretch {
  /** Function and where it lives (Tollgate files relative to dist/, packages by name). */
  name: string;
  /** Longest stretch, ms. */
  longestMs: number;
  /** Stretches of at least 10 ms. */
  over10ms: number;
  /** Stretches of at least 5 ms. */
  over5ms: number;
}

function frameName(n: Node): string {
  const f = n.callFrame;
  let where = f.url;
  const dist = where.indexOf('/dist/');
  const nm = where.lastIndexOf('/node_modules/');
  if (nm !== -1) where = where.slice(nm + '/node_modules/'.length).split('/')[0] ?? where;
  else if (dist !== -1) where = where.slice(dist + '/dist/'.length);
  return `${f.functionName || '(anonymous)'}${where ? ` ${where}:${f.lineNumber + 1}` : ''}`;
}

/**
 * The functions with the longest stretches, after `skipFirstMs` of the profile (start-up).
 * `filter` keeps the functions of interest (default: everything but the roots and idle).
 */
export function longStretches(file: string, opts: { skipFirstMs?: number; top?: number; filter?: (name: string) => boolean } = {}): Stretch[] {
  const p = JSON.parse(readFileSync(file, 'utf8')) as { nodes: Node[]; startTime: number; samples: number[]; timeDeltas: number[] };
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const names = new Map(p.nodes.map((n) => [n.id, frameName(n)]));
  const keep = opts.filter ?? ((name: string) => !name.startsWith('(root)') && !name.startsWith('(idle)') && !name.startsWith('(program)'));
  const open = new Map<string, { start: number; end: number }>();
  const lengths = new Map<string, number[]>();
  const close = (name: string, r: { start: number; end: number }) => {
    let l = lengths.get(name);
    if (!l) lengths.set(name, (l = []));
    l.push((r.end - r.start) / 1000);
  };
  const skipUntil = p.startTime + (opts.skipFirstMs ?? 3_000) * 1000;
  let t = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i] ?? 0;
    if (t < skipUntil) continue;
    const end = t + (p.timeDeltas[i + 1] ?? 0);
    const stack = new Set<string>();
    for (let cur: number | undefined = p.samples[i]; cur !== undefined; cur = parent.get(cur)) {
      if (!byId.has(cur)) break;
      const name = names.get(cur) as string;
      if (keep(name)) stack.add(name);
    }
    for (const [name, r] of open) {
      if (!stack.has(name)) {
        close(name, r);
        open.delete(name);
      }
    }
    for (const name of stack) {
      const r = open.get(name);
      if (r) r.end = end;
      else open.set(name, { start: t, end });
    }
  }
  for (const [name, r] of open) close(name, r);
  return [...lengths]
    .map(([name, l]) => ({ name, longestMs: Math.max(...l), over10ms: l.filter((x) => x >= 10).length, over5ms: l.filter((x) => x >= 5).length }))
    .sort((a, b) => b.longestMs - a.longestMs)
    .slice(0, opts.top ?? 20);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: npx tsx bench/lib/cpuprofile-stretches.ts <file.cpuprofile> [skipFirstSeconds=3] [top=20]\n');
    process.exit(2);
  }
  const rows = longStretches(file, { skipFirstMs: Number(process.argv[3] ?? 3) * 1000, top: Number(process.argv[4] ?? 20) });
  for (const r of rows) process.stdout.write(`${r.longestMs.toFixed(1).padStart(8)} ms  >=10 ms: ${String(r.over10ms).padStart(4)}  >=5 ms: ${String(r.over5ms).padStart(4)}  ${r.name}\n`);
}
