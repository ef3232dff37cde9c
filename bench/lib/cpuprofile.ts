/**
 * Summarizes a V8 .cpuprofile (from `node --cpu-prof`): where the CPU time went, by package or
 * source file (self time), by function (self time), and by function including callees.
 *
 * Usage on its own:  npx tsx bench/lib/cpuprofile.ts <file.cpuprofile> [top]
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { blocksToText, table, text, type Block } from './report.js';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  hitCount?: number;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileEntry {
  name: string;
  ms: number;
  /** Share of the busy (non-idle) time, %. */
  pct: number;
}

export interface ProfileSummary {
  file: string;
  /** Sampled wall time, ms. */
  totalMs: number;
  /** Time not idle, ms. */
  busyMs: number;
  /** Self time by where the code lives: a package, Tollgate's own files, node internals, GC. */
  byArea: ProfileEntry[];
  /** Self time by function. */
  selfByFunction: ProfileEntry[];
  /** Time inside a function, callees included (Tollgate's own functions only). */
  inclusiveTollgate: ProfileEntry[];
}

const SPECIAL = new Set(['(idle)', '(program)', '(garbage collector)', '(root)']);

/** Where a frame's code lives: "fastify", "tollgate src/http/app.js", "node:internal", "(garbage collector)"... */
function area(f: CallFrame): string {
  if (!f.url) return SPECIAL.has(f.functionName) ? f.functionName : '(native)';
  const nm = f.url.lastIndexOf('/node_modules/');
  if (nm !== -1) {
    const rest = f.url.slice(nm + '/node_modules/'.length).split('/');
    return rest[0]?.startsWith('@') ? `${rest[0]}/${rest[1]}` : (rest[0] ?? '?');
  }
  if (f.url.startsWith('node:')) return f.url.startsWith('node:internal') ? 'node:internal' : f.url;
  const dist = f.url.indexOf('/dist/');
  if (dist !== -1) return `tollgate ${f.url.slice(dist + '/dist/'.length)}`;
  return f.url.replace(/^file:\/\//, '');
}

function isTollgate(f: CallFrame): boolean {
  return f.url.includes('/dist/') && !f.url.includes('/node_modules/');
}

function fnName(f: CallFrame): string {
  const where = f.url ? `${area(f).replace(/^tollgate /, '')}:${f.lineNumber + 1}` : '';
  return `${f.functionName || '(anonymous)'}${where ? ` ${where}` : ''}`;
}

function top(map: Map<string, number>, busyMs: number, n: number): ProfileEntry[] {
  return [...map.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([name, ms]) => ({ name, ms, pct: (ms / busyMs) * 100 }));
}

export function summarizeCpuProfile(file: string, n = 20): ProfileSummary {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const node of p.nodes) {
    byId.set(node.id, node);
    for (const c of node.children ?? []) parent.set(c, node.id);
  }
  // Sample i lasted timeDeltas[i + 1] (the gap to the next sample); µs.
  const selfUs = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i] as number;
    const dt = p.timeDeltas[i + 1] ?? 0;
    selfUs.set(id, (selfUs.get(id) ?? 0) + dt);
  }
  const byArea = new Map<string, number>();
  const byFn = new Map<string, number>();
  const inclusive = new Map<string, number>();
  let totalMs = 0;
  let idleMs = 0;
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (!node) continue;
    const ms = us / 1000;
    totalMs += ms;
    const f = node.callFrame;
    if (f.functionName === '(idle)') {
      idleMs += ms;
      continue;
    }
    byArea.set(area(f), (byArea.get(area(f)) ?? 0) + ms);
    byFn.set(fnName(f), (byFn.get(fnName(f)) ?? 0) + ms);
    // Inclusive: charge every distinct Tollgate function on the stack once.
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const cf = byId.get(cur)?.callFrame;
      if (!cf || !isTollgate(cf)) continue;
      const name = fnName(cf);
      if (seen.has(name)) continue;
      seen.add(name);
      inclusive.set(name, (inclusive.get(name) ?? 0) + ms);
    }
  }
  const busyMs = totalMs - idleMs;
  return {
    file,
    totalMs,
    busyMs,
    byArea: top(byArea, busyMs, n),
    selfByFunction: top(byFn, busyMs, n),
    inclusiveTollgate: top(inclusive, busyMs, n),
  };
}

/** The summary as report blocks: the busy time, then a table each of self time by area, by function, and Tollgate's functions with callees. */
export function profileBlocks(s: ProfileSummary): Block[] {
  const rows = (list: ProfileEntry[]) => list.map((e) => [e.name, e.ms.toFixed(0), `${e.pct.toFixed(1)}%`]);
  return [
    text(`Profile ${s.file}: ${(s.busyMs / 1000).toFixed(1)} s busy of ${(s.totalMs / 1000).toFixed(1)} s sampled.`),
    text('Self time by area (package, Tollgate file, node internals, GC):'),
    table(['area', 'ms', '% of busy'], rows(s.byArea)),
    text('Self time by function:'),
    table(['function', 'ms', '% of busy'], rows(s.selfByFunction)),
    text("Tollgate's own functions, callees included:"),
    table(['function', 'ms', '% of busy'], rows(s.inclusiveTollgate)),
  ];
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: npx tsx bench/lib/cpuprofile.ts <file.cpuprofile> [top]\n');
    process.exit(2);
  }
  process.stdout.write(`${blocksToText(profileBlocks(summarizeCpuProfile(file, Number(process.argv[3] ?? 25))))}\n`);
}

/**
 * The main thread's profile in a `--cpu-prof-dir`. Node writes one file per thread
 * (CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile, thread 0 = main); the gateway's SQLite
 * writer thread has its own. Falls back to the largest file.
 */
export function mainThreadProfile(dir: string): string | undefined {
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  return files.find((f) => /\.\d+\.0\.\d+\.cpuprofile$/.test(f)) ?? files.sort((a, b) => statSync(join(dir, b)).size - statSync(join(dir, a)).size)[0];
}
