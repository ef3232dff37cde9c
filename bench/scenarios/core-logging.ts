/**
 * The core report's "What users run: logs to a file" section. Per mode, three gateways with the
 * same config measured in the same rounds: `tollgate` (stdout to /dev/null), `tollgate-file` (the
 * default logging, stdout to a file, as a container runtime or a service manager runs it) and
 * `tollgate-quiet` (stdout to a file, `logging.level: warn`: no per-request access line). Shows
 * their saturation throughput and share of the floor's, CPU per request, latency at the fixed rate
 * and log bytes per request, and judges the cost of the default logging (1 - tollgate-file /
 * tollgate-quiet at saturation).
 */
import { issuesOf } from '../lib/compare.js';
import { column, list, section, tableOf, text, type Block } from '../lib/report.js';
import type { Verdict } from '../lib/scenario.js';
import { fmt } from '../lib/table.js';
import type { Mode } from '../lib/tollgate.js';
import type { RunRecord, TargetName } from './core-report.js';

/** The gateways compared, in the order they take their turns. */
export const LOGGING_TARGETS = ['tollgate', 'tollgate-file', 'tollgate-quiet'] as const;
export type LoggingTarget = (typeof LOGGING_TARGETS)[number];
/** The targets whose stdout goes to a file. */
export type FileTarget = Exclude<LoggingTarget, 'tollgate'>;
export const FILE_TARGETS: FileTarget[] = ['tollgate-file', 'tollgate-quiet'];

/** Issue 18: the default logging costs at most this share of the throughput with logging off. */
export const LOGGING_COST_TARGET_PCT = 10;

/** Bytes each log file grew by during one mode's measured runs (fixed rate and saturation). */
export type LogGrowth = Partial<Record<Mode, Record<FileTarget, number>>>;

export interface LoggingRow {
  /** Saturation req/s over all slices, and as a % of the floor's. */
  saturationRps: number;
  pctOfFloor: number;
  /** The gateway's CPU µs per request at saturation and at the fixed rate. */
  cpuUsPerReq: { saturation: number; rate: number };
  /** Latency at the fixed rate, over all samples. */
  rateMs: { p50: number; p99: number };
  /** Log file growth per request sent (fixed rate and saturation); absent for /dev/null. */
  logBytesPerReq?: number;
}

export interface LoggingDerived {
  rows: Record<LoggingTarget, LoggingRow>;
  /** 1 - tollgate-file / tollgate-quiet of the saturation req/s, %. */
  costPct: number;
  /** The same of each round's saturation slices, in round order. */
  roundCostsPct: number[];
  issues: string;
}

const find = (runs: RunRecord[], kind: RunRecord['kind'], mode: Mode, target: TargetName) => runs.find((r) => r.kind === kind && r.mode === mode && r.target === target);

export function deriveLogging(runs: RunRecord[], modes: Mode[], growth: LogGrowth): Partial<Record<Mode, LoggingDerived>> {
  const out: Partial<Record<Mode, LoggingDerived>> = {};
  for (const mode of modes) {
    const floorRps = find(runs, 'saturation', mode, 'floor')?.load.rps ?? NaN;
    const rows = {} as Record<LoggingTarget, LoggingRow>;
    for (const t of LOGGING_TARGETS) {
      const sat = find(runs, 'saturation', mode, t);
      const rate = find(runs, 'rate', mode, t);
      const bytes = t === 'tollgate' ? undefined : growth[mode]?.[t];
      const sent = (sat?.load.sent ?? NaN) + (rate?.load.sent ?? NaN);
      rows[t] = {
        saturationRps: sat?.load.rps ?? NaN,
        pctOfFloor: ((sat?.load.rps ?? NaN) / floorRps) * 100,
        cpuUsPerReq: { saturation: sat?.cpu.targetUsPerReq ?? NaN, rate: rate?.cpu.targetUsPerReq ?? NaN },
        rateMs: { p50: rate?.load.latencyMs.p50 ?? NaN, p99: rate?.load.latencyMs.p99 ?? NaN },
        ...(bytes !== undefined ? { logBytesPerReq: bytes / sent } : {}),
      };
    }
    const fileSlices = find(runs, 'saturation', mode, 'tollgate-file')?.load.perSlice ?? [];
    const quietSlices = find(runs, 'saturation', mode, 'tollgate-quiet')?.load.perSlice ?? [];
    out[mode] = {
      rows,
      costPct: (1 - rows['tollgate-file'].saturationRps / rows['tollgate-quiet'].saturationRps) * 100,
      roundCostsPct: fileSlices.slice(0, quietSlices.length).map((x, i) => (1 - x.rps / (quietSlices[i]?.rps ?? NaN)) * 100),
      issues: issuesOf({ 'tollgate-file': find(runs, 'saturation', mode, 'tollgate-file')?.load, 'tollgate-quiet': find(runs, 'saturation', mode, 'tollgate-quiet')?.load }),
    };
  }
  return out;
}

export function loggingVerdicts(d: Partial<Record<Mode, LoggingDerived>>, modes: Mode[]): Verdict[] {
  return modes.map((mode) => {
    const x = d[mode];
    const cost = x?.costPct ?? NaN;
    return {
      name: `${mode}: default logging's cost, 1 - saturation req/s of tollgate-file / tollgate-quiet (stdout to a file)`,
      target: `<= ${LOGGING_COST_TARGET_PCT}%`,
      actual: `${fmt(cost, 1)}% (${fmt(x?.rows['tollgate-file'].saturationRps, 0)} vs ${fmt(x?.rows['tollgate-quiet'].saturationRps, 0)} req/s)`,
      pass: !x?.issues && Number.isFinite(cost) && cost <= LOGGING_COST_TARGET_PCT,
      ...(x?.issues ? { note: x.issues } : {}),
    };
  });
}

const LABELS: Record<LoggingTarget, string> = {
  tollgate: 'tollgate (stdout to /dev/null)',
  'tollgate-file': 'tollgate-file (default logging, stdout to a file)',
  'tollgate-quiet': 'tollgate-quiet (logging.level: warn, stdout to a file)',
};

export function loggingSection(d: Partial<Record<Mode, LoggingDerived>>, modes: Mode[], R: string): Block[] {
  const rows = modes.flatMap((mode) => {
    const x = d[mode];
    return x ? LOGGING_TARGETS.map((t) => ({ mode, t, r: x.rows[t] })) : [];
  });
  const pct = (v: number) => `${fmt(v, 1)}%`;
  return section(
    'What users run: logs to a file',
    text(
      `Three gateways with the same config, measured in the same rounds as the other targets: \`tollgate\` with stdout to /dev/null, \`tollgate-file\` with stdout appended to a file (the default logging: one access line per request at info, as a container runtime or a service manager runs it) and \`tollgate-quiet\` with stdout to a file and \`logging.level: warn\` (the access line off). Saturation req/s over all slices; "cost of default logging" = 1 - tollgate-file / tollgate-quiet of those (target <= ${LOGGING_COST_TARGET_PCT}%). Log bytes/req: the file's growth during the mode's measured runs over the requests sent in them.`,
    ),
    tableOf(rows, [
      column('mode', (x) => x.mode),
      column('target', (x) => LABELS[x.t]),
      column('saturation req/s', (x) => fmt(x.r.saturationRps, 0)),
      column('% of floor', (x) => pct(x.r.pctOfFloor)),
      column('cost of default logging', (x) => (x.t === 'tollgate-file' ? pct(d[x.mode]?.costPct ?? NaN) : '')),
      column('CPU µs/req (saturation)', (x) => fmt(x.r.cpuUsPerReq.saturation, 0)),
      column(`p50 ms at ${R} req/s`, (x) => fmt(x.r.rateMs.p50)),
      column('p99 ms', (x) => fmt(x.r.rateMs.p99)),
      column(`CPU µs/req at ${R} req/s`, (x) => fmt(x.r.cpuUsPerReq.rate, 0)),
      column('log bytes/req', (x) => (x.r.logBytesPerReq === undefined ? '—' : fmt(x.r.logBytesPerReq, 0))),
    ]),
    list(
      modes.flatMap((mode) => {
        const x = d[mode];
        return x ? [`${mode}: cost of default logging per round (in round order): ${x.roundCostsPct.map(pct).join(', ')}${x.issues ? `; issues: ${x.issues}` : ''}`] : [];
      }),
    ),
  );
}
