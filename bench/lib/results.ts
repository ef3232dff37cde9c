/**
 * Where results go: raw JSON per run in bench/results/<scenario>-<date>.json, and one section per
 * scenario in bench/RESULTS.md between `<!-- name:start -->` and `<!-- name:end -->` (other
 * sections are left as they are, so each scenario owns its own).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const BENCH_DIR = dirname(dirname(fileURLToPath(import.meta.url)));
export const REPO_ROOT = dirname(BENCH_DIR);
export const RESULTS_DIR = join(BENCH_DIR, 'results');
export const RESULTS_MD = join(BENCH_DIR, 'RESULTS.md');

export interface MachineInfo {
  cpuModel: string;
  cores: number;
  memoryGB: number;
  node: string;
  platform: string;
  /** 1-minute load average when the run started: other work on a shared machine skews results. */
  loadAvg1: number;
}

export function machineInfo(): MachineInfo {
  let cpuModel = cpus()[0]?.model ?? 'unknown';
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m?.[1]) cpuModel = m[1].trim();
  } catch {
    // not Linux: keep os.cpus()
  }
  return {
    cpuModel,
    cores: cpus().length,
    memoryGB: Math.round((totalmem() / 1024 ** 3) * 10) / 10,
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    loadAvg1: Math.round((loadavg()[0] ?? 0) * 100) / 100,
  };
}

export function describeMachine(m: MachineInfo): string {
  return `${m.cpuModel}, ${m.cores} cores, ${m.memoryGB} GB RAM, Node ${m.node} (${m.platform}); load average at start ${m.loadAvg1}`;
}

/** What every raw results file starts with: the scenario, when it ran, on what. */
export function rawHeader(scenario: string, at: { date: Date; machine: MachineInfo }): { scenario: string; date: string; machine: MachineInfo } {
  return { scenario, date: at.date.toISOString(), machine: at.machine };
}

/** A file-name-safe ISO timestamp: 2025-01-31T12-34-56Z. */
export function fileStamp(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/:/g, '-');
}

/** A new folder for a run's CPU profiles: bench/results/profiles/<scenario>-<stamp>[/<sub>] (git-ignored). */
export function profileDir(scenario: string, date: Date, sub?: string): string {
  const dir = join(RESULTS_DIR, 'profiles', `${scenario}-${fileStamp(date)}`, ...(sub === undefined ? [] : [sub]));
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Writes bench/results/<scenario>-<stamp>.json and returns its path. */
export function writeRawResults(scenario: string, date: Date, data: unknown): string {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = join(RESULTS_DIR, `${scenario}-${fileStamp(date)}.json`);
  writeFileSync(file, `${JSON.stringify(data, null, 2)}\n`);
  return file;
}

const HEADER = `# Benchmark results

Written by \`npm run bench\` (see bench/README.md). Each scenario owns the section between its
markers and rewrites only that; raw numbers are in bench/results/.
`;

/** Replaces (or appends) the `name` section of bench/RESULTS.md with `markdown`. */
export function writeResultsSection(name: string, markdown: string): void {
  const start = `<!-- ${name}:start -->`;
  const end = `<!-- ${name}:end -->`;
  const block = `${start}\n${markdown.trim()}\n${end}`;
  const current = existsSync(RESULTS_MD) ? readFileSync(RESULTS_MD, 'utf8') : HEADER;
  const i = current.indexOf(start);
  const j = current.indexOf(end);
  let next: string;
  if (i !== -1 && j > i) next = current.slice(0, i) + block + current.slice(j + end.length);
  else next = `${current.trimEnd()}\n\n${block}\n`;
  writeFileSync(RESULTS_MD, next);
}
