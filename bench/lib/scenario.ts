/** The contract between bench/run.ts and a scenario in bench/scenarios/, and the settings scenarios read from the environment. */
import type { ReportDoc } from './report.js';
import { rawHeader, type MachineInfo } from './results.js';
import type { Mode } from './tollgate.js';

export interface BenchSettings {
  /** Length of each measured run, seconds (BENCH_SECONDS / --seconds; default 10). */
  seconds: number;
  /** Warm-up per target before measuring, seconds (BENCH_WARMUP_SECONDS; default 2). */
  warmupSeconds: number;
  /** Repository root (where dist/ and package.json are). */
  root: string;
  /** When the scenario started (its results are named after it). */
  date: Date;
  /** The machine, as the scenario started. */
  machine: MachineInfo;
  /** Progress lines for the console. */
  log(line: string): void;
}

/** A target the scenario compares against, with its verdict. */
export interface Verdict {
  name: string;
  /** e.g. "<= 1 ms" */
  target: string;
  /** e.g. "0.42 ms" */
  actual: string;
  pass: boolean;
  /** Why the verdict may not be trustworthy (errors in the run, missing data...). */
  note?: string;
}

export interface ScenarioReport {
  /** The report (lib/report.ts): the scenario's section of bench/RESULTS.md and the console summary. */
  doc: ReportDoc;
  verdicts: Verdict[];
  /** Everything measured, written as JSON to bench/results/<name>-<date>.json. */
  raw: unknown;
}

/** What a scenario's report module builds: the document, and the verdicts, derived figures and caveats it shows (the raw JSON keeps them too). */
export interface BuiltReport<Derived> {
  doc: ReportDoc;
  verdicts: Verdict[];
  derived: Derived;
  caveats: string[];
}

/** The report's figures for the raw JSON: the derived figures, then `between` (e.g. the checks), then the verdicts and caveats. */
export function reportFields<Derived>(report: BuiltReport<Derived>, between: Record<string, unknown> = {}): Record<string, unknown> {
  return { derived: report.derived, ...between, verdicts: report.verdicts, caveats: report.caveats };
}

/** The scenario's result: the report's document and verdicts, and the raw JSON (`rawHeader` first, then `raw`). */
export function scenarioResult(name: string, s: BenchSettings, report: { doc: ReportDoc; verdicts: Verdict[] }, raw: Record<string, unknown>): ScenarioReport {
  return { doc: report.doc, verdicts: report.verdicts, raw: { ...rawHeader(name, s), ...raw } };
}

export interface Scenario {
  /** Selects it on the command line (`npm run bench -- core`) and names its results. */
  name: string;
  description: string;
  run(settings: BenchSettings): Promise<ScenarioReport>;
}

/** `value` as a positive number (`dflt` when unset or empty); throws naming `what` otherwise. */
export function positiveNumber(value: string | undefined, what: string, dflt: number): number {
  if (value === undefined || value === '') return dflt;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${what} must be a positive number, got '${value}'`);
  return n;
}

/** A positive number from environment variable `name` (`dflt` when unset or empty); throws naming the variable otherwise. */
export function positiveEnv(name: string, dflt: number): number {
  return positiveNumber(process.env[name], name, dflt);
}

/** The request modes listed in environment variable `name` (e.g. `json,stream`). */
export function modesEnv(name: string, dflt: string): Mode[] {
  const modes = (process.env[name] ?? dflt)
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
  for (const m of modes) if (m !== 'json' && m !== 'stream') throw new Error(`${name}: unknown mode '${m}' (json, stream)`);
  if (modes.length === 0) throw new Error(`${name} names no mode`);
  return modes as Mode[];
}
