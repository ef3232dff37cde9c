/**
 * Core gateway overhead: what Tollgate adds on top of the upstream it proxies.
 *
 * Five targets, one at a time, all on 127.0.0.1:
 *   direct          the simulator itself (`tollgate sim --latency 0 --tps 0`: instant answers)
 *   floor           bench/floor-proxy.mjs in front of it: the best a Node proxy can do
 *   tollgate        `tollgate start`, an openai-compatible provider pointing at the simulator, stdout to /dev/null
 *   tollgate-file   the same with stdout to a file (the default logging, as users run it)
 *   tollgate-quiet  the same with stdout to a file and `logging.level: warn` (no access line)
 * and with BENCH_BASELINE_ROOT a sixth, `baseline`: `tollgate start` from that root's dist (e.g.
 * a build of an earlier commit), set up like `tollgate` and measured in the same rounds.
 * For JSON and SSE chat completions: (a) a fixed, evenly paced 1,000 req/s; (b) saturation with
 * 50 connections. Then a cold start (core-cold-start.ts): a new gateway held at saturation from
 * its first request, counted per second. Reports latency with µs precision, throughput, CPU per
 * request, log bytes per request and Tollgate's memory, and checks them against the targets
 * (added p50 <= 1 ms and p99 <= 3 ms over direct at 1,000 req/s; saturation >= 60% of floor;
 * RSS <= 150 MB; default logging <= 10% of the throughput with logging off; >= 80% of steady
 * throughput within 5 s of a new process's first request).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { runAutocannon } from '../lib/autocannon.js';
import type { LoadSlice } from '../lib/load.js';
import { PacedSession } from '../lib/paced.js';
import { canPin, freePort, memoryMB, pinSelf, startProcess, waitForHttp } from '../lib/process.js';
import { heading, list, text, type Block } from '../lib/report.js';
import { BENCH_DIR, profileDir } from '../lib/results.js';
import { positiveEnv, reportFields, scenarioResult, type BenchSettings, type Scenario, type ScenarioReport } from '../lib/scenario.js';
import { fmt } from '../lib/table.js';
import { checkRequest, chatRequest, childEnv, launchGateway, MAX_TOKENS, PROMPT, startSimulator, tollgateCli, type Gateway, type HttpTarget } from '../lib/tollgate.js';
import { describeLoad, rounds, runRounds, TurnMeter, warmUp, settleTargets } from '../lib/turns.js';
import { COLD_TARGET_PCT, COLD_TARGET_S, coldSeconds, runColdStart, type ColdStartRun } from './core-cold-start.js';
import { FILE_TARGETS, LOGGING_COST_TARGET_PCT, type FileTarget, type LogGrowth } from './core-logging.js';
import { measureSpoolWrite, type SpoolWriteCost } from './spool-write.js';
import { buildReport, LOAD_CPU, MODES, PROXY_CPU, TARGETS, type BaselineBuild, type CoreSettings, type MemoryUse, type RunRecord, type TargetName } from './core-report.js';

// ---------------------------------------------------------------------------------------------
// Settings and targets

function coreSettings(): CoreSettings {
  const driver = process.env.BENCH_RATE_DRIVER ?? 'paced';
  if (driver !== 'paced' && driver !== 'autocannon') throw new Error(`BENCH_RATE_DRIVER must be paced or autocannon, got '${driver}'`);
  return {
    rate: positiveEnv('BENCH_RATE', 1_000),
    rateConnections: 50,
    rateDriver: driver,
    leadInS: 0.5,
    saturationConnections: 50,
    profile: process.env.BENCH_PROFILE === '1',
    pin: process.env.BENCH_PIN === '1' && canPin(),
    ...(process.env.BENCH_BASELINE_ROOT ? { baseline: baselineBuild(process.env.BENCH_BASELINE_ROOT) } : {}),
  };
}

/** BENCH_BASELINE_ROOT: its dist must be built; its commit when it is a git checkout (a worktree's .git is a file). */
function baselineBuild(dir: string): BaselineBuild {
  const root = resolve(dir);
  tollgateCli(root);
  if (!existsSync(join(root, '.git'))) return { root };
  const git = (...args: string[]) => execFileSync('git', ['-C', root, ...args], { encoding: 'utf8' }).trim();
  try {
    return { root, commit: git('rev-parse', '--short', 'HEAD'), dirty: git('status', '--porcelain', '--untracked-files=no') !== '' };
  } catch {
    return { root };
  }
}

interface Target extends HttpTarget {
  name: TargetName;
  /** The API key its requests carry when not tollgate's (direct and floor ignore it). */
  apiKey?: string;
}

// ---------------------------------------------------------------------------------------------
// Processes

interface Stack {
  sim: Target;
  floor: Target;
  tollgate: Target;
  /** tollgate-file and tollgate-quiet, and the files their stdout goes to. */
  fileTargets: Record<FileTarget, Target & { logFile: string }>;
  baseline?: Target;
  /** tollgate's API key. */
  apiKey: string;
  tollgateIdleRss: MemoryUse;
  baselineIdleRss?: MemoryUse;
  profileDir?: string;
}

async function startStack(s: BenchSettings, c: CoreSettings, tmp: string, started: Partial<Stack>): Promise<Stack> {
  const env = childEnv();
  const loadCpu = c.pin ? { cpus: LOAD_CPU } : {};
  const proxyCpu = c.pin ? { cpus: PROXY_CPU } : {};
  s.log('starting simulator');
  const sim: Target = { name: 'direct', ...(await startSimulator({ cli: tollgateCli(s.root), cwd: tmp, env, ...loadCpu })) };
  started.sim = sim;

  s.log('starting floor proxy');
  const floorPort = await freePort();
  const floorProc = startProcess({
    name: 'floor proxy',
    command: process.execPath,
    args: [join(BENCH_DIR, 'floor-proxy.mjs'), '--port', String(floorPort), '--upstream', sim.origin],
    cwd: tmp,
    env,
    ...proxyCpu,
  });
  const floor: Target = { name: 'floor', origin: `http://127.0.0.1:${floorPort}`, proc: floorProc };
  started.floor = floor;
  await waitForHttp(`${floor.origin}/v1/models`, floorProc);

  const profile = c.profile ? profileDir('core', s.date) : undefined;
  const g = await launchGateway({ name: 'tollgate', root: s.root, dir: tmp, simOrigin: sim.origin, log: s.log, cpuProfileDir: profile, ...proxyCpu });
  const tollgate: Target = { name: 'tollgate', origin: g.origin, proc: g.proc };
  started.tollgate = tollgate;

  // Same config as tollgate, a tenant, key and state of their own, stdout appended to a file.
  const fileTargets = {} as Stack['fileTargets'];
  for (const name of FILE_TARGETS) {
    const logFile = join(tmp, `${name}.log`);
    const extra = name === 'tollgate-quiet' ? { extra: { logging: { level: 'warn' } } } : {};
    const fg = await launchGateway({ name, root: s.root, dir: join(tmp, name), simOrigin: sim.origin, log: s.log, logFile, note: ` (stdout to ${logFile})`, ...extra, ...proxyCpu });
    fileTargets[name] = { name, origin: fg.origin, proc: fg.proc, apiKey: fg.apiKey, logFile };
    started.fileTargets = fileTargets;
  }

  let baseline: Gateway | undefined;
  if (c.baseline) {
    baseline = await launchGateway({ name: 'baseline', root: c.baseline.root, dir: join(tmp, 'baseline'), simOrigin: sim.origin, log: s.log, note: ` (${c.baseline.root})`, ...proxyCpu });
    started.baseline = { name: 'baseline', origin: baseline.origin, proc: baseline.proc, apiKey: baseline.apiKey };
  }

  // One request through each target before measuring anything: fail early and clearly.
  for (const t of [sim, floor, tollgate, ...(started.baseline ? [started.baseline] : []), ...Object.values(fileTargets)]) {
    for (const mode of MODES) await checkRequest(chatRequest(t.origin, mode, t.apiKey ?? g.apiKey), t.proc, `${t.proc.name} (${mode})`);
  }
  return {
    sim,
    floor,
    tollgate,
    fileTargets,
    apiKey: g.apiKey,
    tollgateIdleRss: g.idleRss,
    ...(baseline && started.baseline ? { baseline: started.baseline, baselineIdleRss: baseline.idleRss } : {}),
    ...(profile ? { profileDir: profile } : {}),
  };
}

// ---------------------------------------------------------------------------------------------
// Runs

/**
 * Every target's slices of one kind and mode, in rounds: the same order every round, except that
 * tollgate-file and tollgate-quiet, compared with each other, swap places every other round (in
 * smoke runs the last turn of a round measured up to a quarter slower at JSON saturation,
 * whichever of the two took it).
 */
async function measureKind(kind: RunRecord['kind'], mode: RunRecord['mode'], targets: Target[], st: Stack, count: number, slice: (i: number, round: number) => Promise<LoadSlice>): Promise<RunRecord[]> {
  const meters = targets.map((t) => new TurnMeter({ targetPid: t.proc.pid, sim: { origin: st.sim.origin, pid: st.sim.proc.pid } }));
  const [a, b] = FILE_TARGETS.map((n) => targets.findIndex((t) => t.name === n)) as [number, number];
  const turnOf = (k: number, round: number) => (round % 2 === 0 ? k : k === a ? b : k === b ? a : k);
  await runRounds(
    targets.length,
    count,
    (k, round) => {
      const i = turnOf(k, round);
      return (meters[i] as TurnMeter).measure(() => slice(i, round));
    },
    'fixed',
  );
  return targets.map((t, i) => {
    const { upstreamCallsPerRequest, upstream, ...measured } = (meters[i] as TurnMeter).result();
    return { kind, mode, target: t.name, ...measured, ...(t.name === 'direct' ? {} : { upstreamCallsPerRequest, upstream }) };
  });
}

// ---------------------------------------------------------------------------------------------
// The scenario

export const coreScenario: Scenario = {
  name: 'core',
  description: 'Tollgate vs the simulator directly vs a bare Node proxy: latency at 1,000 req/s, saturation throughput, memory; logs to a file vs logging off; a cold start',
  async run(s: BenchSettings): Promise<ScenarioReport> {
    const c = coreSettings();
    const tmp = mkdtempSync(join(tmpdir(), 'tollgate-bench-core-'));
    const runs: RunRecord[] = [];
    const rate = rounds(s.seconds, 1);
    // autocannon checks its duration once a second: whole seconds only.
    const sat = rounds(s.seconds, s.seconds >= 4 ? 2 : 1);
    const started: Partial<Stack> = {};
    let stack: Stack | undefined;
    const memory: Record<TargetName, MemoryUse | undefined> = { direct: undefined, floor: undefined, tollgate: undefined, 'tollgate-file': undefined, 'tollgate-quiet': undefined, baseline: undefined };
    const logGrowth: LogGrowth = {};
    let coldStart: ColdStartRun | undefined;
    if (c.pin) pinSelf(LOAD_CPU);
    try {
      stack = await startStack(s, c, tmp, started);
      const st = stack;
      // baseline right after tollgate (the builds compared), then the two logging to a file (compared with each other).
      const targets: Target[] = [st.sim, st.floor, st.tollgate, ...(st.baseline ? [st.baseline] : []), ...FILE_TARGETS.map((n) => st.fileTargets[n])];
      const logSizes = () => Object.fromEntries(FILE_TARGETS.map((n) => [n, statSync(st.fileTargets[n].logFile).size])) as Record<FileTarget, number>;

      for (const t of targets) {
        await warmUp({
          name: t.name,
          requests: MODES.map((m) => chatRequest(t.origin, m, t.apiKey ?? st.apiKey)),
          connections: c.saturationConnections,
          seconds: s.warmupSeconds,
          what: 'JSON and SSE alternating',
          log: s.log,
        });
      }
      // Warm-up ends by cutting streams off, which makes Tollgate load its tokenizer.
      await settleTargets(targets.map((t) => t.proc.pid), s.log);

      for (const mode of MODES) {
        const spec = (i: number) => chatRequest((targets[i] as Target).origin, mode, (targets[i] as Target).apiKey ?? st.apiKey);
        s.log(`${mode}: fixed rate, ${rate.count} rounds of ${fmt(rate.sliceS)} s per target`);
        const logsBefore = logSizes();
        const sessions = targets.map((_, i) => new PacedSession(spec(i), c.rateConnections));
        try {
          runs.push(
            ...(await measureKind('rate', mode, targets, st, rate.count, (i, round) =>
              c.rateDriver === 'paced'
                ? (sessions[i] as PacedSession).run(c.rate, rate.sliceS, round === 0 ? c.leadInS : 0)
                : runAutocannon({ request: spec(i), connections: c.rateConnections, durationS: rate.sliceS, overallRate: c.rate }),
            )),
          );
        } finally {
          await Promise.all(sessions.map((x) => x.close()));
        }
        s.log(`${mode}: saturation, ${sat.count} rounds of ${fmt(sat.sliceS)} s per target`);
        runs.push(...(await measureKind('saturation', mode, targets, st, sat.count, (i) => runAutocannon({ request: spec(i), connections: c.saturationConnections, durationS: sat.sliceS }))));
        const logsAfter = logSizes();
        logGrowth[mode] = Object.fromEntries(FILE_TARGETS.map((n) => [n, logsAfter[n] - logsBefore[n]])) as Record<FileTarget, number>;
        for (const r of runs.filter((x) => x.mode === mode)) s.log(`${r.mode.padEnd(6)} ${r.kind.padEnd(10)} ${r.target.padEnd(14)} ${describeLoad(r.load, r.cpu)}`);
      }
      memory.tollgate = memoryMB(st.tollgate.proc.pid);
      memory.floor = memoryMB(st.floor.proc.pid);
      memory.direct = memoryMB(st.sim.proc.pid);
      for (const n of FILE_TARGETS) memory[n] = memoryMB(st.fileTargets[n].proc.pid);
      if (st.baseline) memory.baseline = memoryMB(st.baseline.proc.pid);
      coldStart = await runColdStart({ s, dir: tmp, simOrigin: st.sim.origin, seconds: coldSeconds(), connections: c.saturationConnections, ...(c.pin ? { cpus: PROXY_CPU } : {}) });
    } finally {
      // Under --cpu-prof, Tollgate writes its profile as it exits: give it time.
      for (const t of [started.baseline, ...Object.values(started.fileTargets ?? {}), started.tollgate, started.floor, started.sim]) {
        if (t) await t.proc.stop(c.profile && t.name === 'tollgate' ? 30_000 : 5_000);
      }
      rmSync(tmp, { recursive: true, force: true });
      if (c.pin) pinSelf(`0-${cpus().length - 1}`);
    }
    const st = stack;
    if (!st) throw new Error('core: the processes did not start');

    const report = buildReport({ runs, memory, tollgateIdleRss: st.tollgateIdleRss, baselineIdleRss: st.baselineIdleRss, core: c, settings: s, rate, sat, maxTokens: MAX_TOKENS, profileDir: st.profileDir, logGrowth, coldStart });
    s.log('spool write per answer: in process, LedgerWriter.record vs the former one write per turn');
    const spool = await measureSpoolWrite(Math.max(1, s.seconds / 2), Math.max(0.5, s.warmupSeconds / 2));
    report.doc.blocks.push(...spoolWriteBlocks(spool, runs));
    return scenarioResult('core', s, report, {
      settings: { ...c, seconds: s.seconds, warmupSeconds: s.warmupSeconds, maxTokens: MAX_TOKENS, prompt: PROMPT },
      targets: { ...TARGETS, loggingCostPct: LOGGING_COST_TARGET_PCT, coldStart: { pctOfSteady: COLD_TARGET_PCT, withinS: COLD_TARGET_S } },
      runs,
      ...reportFields(report, { memory: { tollgateIdle: st.tollgateIdleRss, ...(st.baselineIdleRss ? { baselineIdle: st.baselineIdleRss } : {}), afterRuns: memory }, logGrowth, ...(coldStart ? { coldStart } : {}) }),
      spoolWrite: spool,
      ...(st.profileDir ? { profileDir: st.profileDir } : {}),
      ...(report.profile ? { profile: report.profile } : {}),
    });
  },
};

/** The spool write's cost per answer, and its share of Tollgate's CPU per request at the fixed rate (JSON). */
function spoolWriteBlocks(w: SpoolWriteCost, runs: RunRecord[]): Block[] {
  const cpu = runs.find((r) => r.kind === 'rate' && r.mode === 'json' && r.target === 'tollgate')?.cpu.targetUsPerReq;
  const added = w.perEventUs.p50 - w.batchedUs.p50;
  const share = (us: number) => (cpu ? `${fmt((us / cpu) * 100, 1)}% of` : 'n/a: no');
  return [
    heading('Spool write per answer'),
    list([
      `now, one write(2) per event on the request's turn: median ${fmt(w.perEventUs.p50, 2)} µs per event (p99 of batches ${fmt(w.perEventUs.p99, 2)} µs) = ${share(w.perEventUs.p50)} Tollgate's CPU per JSON request at the fixed rate (${cpu === undefined ? '?' : fmt(cpu, 0)} µs)`,
      `before, one write per ${w.perWrite} events a turn later: median ${fmt(w.batchedUs.p50, 2)} µs per event (p99 ${fmt(w.batchedUs.p99, 2)} µs)`,
      `added by writing before the last byte: ${fmt(added, 2)} µs per request (${share(Math.max(0, added))} the request's CPU)`,
    ]),
    text(`Spool write per answer (usage event on disk before the last byte; in process, ${w.events.toLocaleString('en-US')} events each way, alternating batches of 200).`),
  ];
}
