/** The contract between bench/run.ts and a scenario in bench/scenarios/. */

export interface BenchSettings {
  /** Length of each measured run, seconds (BENCH_SECONDS / --seconds; default 10). */
  seconds: number;
  /** Warm-up per target before measuring, seconds (BENCH_WARMUP_SECONDS; default 2). */
  warmupSeconds: number;
  /** Repository root (where dist/ and package.json are). */
  root: string;
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
  /** Console summary (plain text). */
  summary: string;
  /** The scenario's section of bench/RESULTS.md (without markers). */
  markdown: string;
  verdicts: Verdict[];
  /** Everything measured, written as JSON to bench/results/<name>-<date>.json. */
  raw: unknown;
}

export interface Scenario {
  /** Selects it on the command line (`npm run bench -- core`) and names its results. */
  name: string;
  description: string;
  run(settings: BenchSettings): Promise<ScenarioReport>;
}

/** A positive number from environment variable `name` (`dflt` when unset or empty); throws naming the variable otherwise. */
export function positiveEnv(name: string, dflt: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, got '${raw}'`);
  return n;
}
