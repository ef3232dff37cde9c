/**
 * Core gateway overhead: what Tollgate adds on top of the upstream it proxies.
 *
 * Three targets, one at a time, all on 127.0.0.1:
 *   direct    the simulator itself (`tollgate sim --latency 0 --tps 0`: instant answers)
 *   floor     bench/floor-proxy.mjs in front of it: the best a Node proxy can do
 *   tollgate  `tollgate start`, an openai-compatible provider pointing at the simulator
 * For JSON and SSE chat completions: (a) a fixed, evenly paced 1,000 req/s; (b) saturation with
 * 50 connections. Reports latency with µs precision, throughput, CPU per request and Tollgate's
 * memory, and checks them against the targets (added p50 <= 1 ms and p99 <= 3 ms over direct at
 * 1,000 req/s; saturation >= 60% of floor; RSS <= 150 MB).
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { runAutocannon } from '../lib/autocannon.js';
import type { LoadSlice } from '../lib/load.js';
import { PacedSession } from '../lib/paced.js';
import { canPin, freePort, memoryMB, pinSelf, startProcess, waitForHttp, waitForIdle, type ManagedProcess } from '../lib/process.js';
import { BENCH_DIR, fileStamp, machineInfo } from '../lib/results.js';
import type { BenchSettings, Scenario, ScenarioReport } from '../lib/scenario.js';
import { fmt } from '../lib/table.js';
import {
  checkRequest,
  chatRequest,
  childEnv,
  createTenantAndKey,
  gatewayConfig,
  MAX_TOKENS,
  PROMPT,
  startGateway,
  startSimulator,
  tollgateCli,
  writeGatewayConfig,
} from '../lib/tollgate.js';
import { describeLoad, rounds, TurnMeter, warmUp } from '../lib/turns.js';
import { measureSpoolWrite, type SpoolWriteCost } from './spool-write.js';
import {
  buildReport,
  LOAD_CPU,
  MODES,
  PROXY_CPU,
  TARGETS,
  type CoreSettings,
  type MemoryUse,
  type Mode,
  type RunRecord,
  type TargetName,
} from './core-report.js';

// ---------------------------------------------------------------------------------------------
// Settings and targets

function coreSettings(): CoreSettings {
  const num = (name: string, dflt: number): number => {
    const v = process.env[name];
    if (v === undefined || v === '') return dflt;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, got '${v}'`);
    return n;
  };
  const driver = process.env.BENCH_RATE_DRIVER ?? 'paced';
  if (driver !== 'paced' && driver !== 'autocannon') throw new Error(`BENCH_RATE_DRIVER must be paced or autocannon, got '${driver}'`);
  return {
    rate: num('BENCH_RATE', 1_000),
    rateConnections: 50,
    rateDriver: driver,
    leadInS: 0.5,
    saturationConnections: 50,
    profile: process.env.BENCH_PROFILE === '1',
    pin: process.env.BENCH_PIN === '1' && canPin(),
  };
}

interface Target {
  name: TargetName;
  origin: string;
  proc: ManagedProcess;
}

// ---------------------------------------------------------------------------------------------
// Processes

interface Stack {
  sim: Target;
  floor: Target;
  tollgate: Target;
  apiKey: string;
  tollgateIdleRss: { rssMB: number; peakRssMB: number };
  profileDir?: string;
}

async function startStack(s: BenchSettings, c: CoreSettings, tmp: string, stamp: string): Promise<Stack> {
  const cli = tollgateCli(s.root);
  const env = childEnv();
  const [simPort, floorPort, tollgatePort] = [await freePort(), await freePort(), await freePort()];

  s.log(`starting simulator on :${simPort}`);
  const loadCpu = c.pin ? { cpus: LOAD_CPU } : {};
  const proxyCpu = c.pin ? { cpus: PROXY_CPU } : {};
  const sim: Target = { name: 'direct', ...(await startSimulator({ cli, cwd: tmp, env, port: simPort, ...loadCpu })) };

  s.log(`starting floor proxy on :${floorPort}`);
  const floorProc = startProcess({
    name: 'floor proxy',
    command: process.execPath,
    args: [join(BENCH_DIR, 'floor-proxy.mjs'), '--port', String(floorPort), '--upstream', sim.origin],
    cwd: tmp,
    env,
    ...proxyCpu,
  });
  const floor: Target = { name: 'floor', origin: `http://127.0.0.1:${floorPort}`, proc: floorProc };
  await waitForHttp(`${floor.origin}/v1/models`, floorProc);

  const configFile = writeGatewayConfig(
    join(tmp, 'tollgate.yaml'),
    gatewayConfig({ port: tollgatePort, simOrigin: sim.origin, storage: { kind: 'embedded', dir: join(tmp, 'state') } }),
  );
  s.log('creating tenant and API key');
  const apiKey = await createTenantAndKey(cli, configFile, tmp);

  let profileDir: string | undefined;
  if (c.profile) {
    profileDir = join(BENCH_DIR, 'results', 'profiles', `core-${stamp}`);
    mkdirSync(profileDir, { recursive: true });
  }
  s.log(`starting tollgate on :${tollgatePort}${c.profile ? ' (with --cpu-prof)' : ''}`);
  const tollgate: Target = {
    name: 'tollgate',
    ...(await startGateway({ name: 'tollgate', cli, configFile, port: tollgatePort, cwd: tmp, env, cpuProfileDir: profileDir, ...proxyCpu })),
  };
  const tollgateIdleRss = memoryMB(tollgate.proc.pid);

  // One request through each target before measuring anything: fail early and clearly.
  for (const t of [sim, floor, tollgate]) {
    for (const mode of MODES) await checkRequest(chatRequest(t.origin, mode, apiKey), t.proc, `${t.proc.name} (${mode})`);
  }
  return { sim, floor, tollgate, apiKey, tollgateIdleRss, ...(profileDir ? { profileDir } : {}) };
}

// ---------------------------------------------------------------------------------------------
// Runs

/** Slices of one (kind, mode, target) and the resources they used. */
class Accumulator {
  private readonly meter: TurnMeter;

  constructor(
    readonly kind: RunRecord['kind'],
    readonly mode: Mode,
    readonly target: Target,
    stack: Stack,
  ) {
    this.meter = new TurnMeter({ targetPid: target.proc.pid, sim: { origin: stack.sim.origin, pid: stack.sim.proc.pid } });
  }

  /** Runs one slice, charging CPU time and upstream calls to it. */
  measure(run: () => Promise<LoadSlice>): Promise<LoadSlice> {
    return this.meter.measure(run);
  }

  record(): RunRecord {
    const load = this.meter.load();
    const upstream = this.meter.upstream(load);
    return {
      kind: this.kind,
      mode: this.mode,
      target: this.target.name,
      load,
      cpu: this.meter.cpu(load),
      ...(this.target.name === 'direct' ? {} : { upstreamCallsPerRequest: upstream.calls / Math.max(1, load.answered), upstream }),
    };
  }
}

function describeRun(r: RunRecord): string {
  return `${r.mode.padEnd(6)} ${r.kind.padEnd(10)} ${r.target.padEnd(8)} ${describeLoad(r.load, r.cpu)}`;
}

// ---------------------------------------------------------------------------------------------
// The scenario

export const coreScenario: Scenario = {
  name: 'core',
  description: 'Tollgate vs the simulator directly vs a bare Node proxy: latency at 1,000 req/s, saturation throughput, memory',
  async run(s: BenchSettings): Promise<ScenarioReport> {
    const c = coreSettings();
    const date = new Date();
    const machine = machineInfo();
    const tmp = mkdtempSync(join(tmpdir(), 'tollgate-bench-core-'));
    const runs: RunRecord[] = [];
    const rate = rounds(s.seconds, 1);
    // autocannon checks its duration once a second: whole seconds only.
    const sat = rounds(s.seconds, s.seconds >= 4 ? 2 : 1);
    let stack: Stack | undefined;
    const memory: Record<TargetName, MemoryUse | undefined> = { direct: undefined, floor: undefined, tollgate: undefined };
    if (c.pin) pinSelf(LOAD_CPU);
    try {
      stack = await startStack(s, c, tmp, fileStamp(date));
      const st = stack;
      const targets: Target[] = [st.sim, st.floor, st.tollgate];

      for (const t of targets) {
        await warmUp({
          name: t.name,
          requests: MODES.map((m) => chatRequest(t.origin, m, st.apiKey)),
          connections: c.saturationConnections,
          seconds: s.warmupSeconds,
          what: 'JSON and SSE alternating',
          log: s.log,
        });
      }
      // Warm-up ends by cutting streams off, which makes Tollgate load its tokenizer (~0.4 s of
      // blocking CPU, more on a busy machine): let every process settle before measuring.
      const waited = await waitForIdle(targets.map((t) => t.proc.pid), { maxMs: 15_000, windowMs: 250, threshold: 0.05 });
      s.log(`targets idle after ${waited} ms`);

      for (const mode of MODES) {
        s.log(`${mode}: fixed rate, ${rate.count} rounds of ${fmt(rate.sliceS)} s per target`);
        const rateAcc = targets.map((t) => new Accumulator('rate', mode, t, st));
        const sessions = targets.map((t) => new PacedSession(chatRequest(t.origin, mode, st.apiKey), c.rateConnections));
        try {
          for (let round = 0; round < rate.count; round++) {
            for (const [i, acc] of rateAcc.entries()) {
              const session = sessions[i] as PacedSession;
              const spec = chatRequest(acc.target.origin, mode, st.apiKey);
              await acc.measure(() =>
                c.rateDriver === 'paced'
                  ? session.run(c.rate, rate.sliceS, round === 0 ? c.leadInS : 0)
                  : runAutocannon({ request: spec, connections: c.rateConnections, durationS: rate.sliceS, overallRate: c.rate }),
              );
            }
          }
        } finally {
          await Promise.all(sessions.map((x) => x.close()));
        }
        for (const acc of rateAcc) {
          runs.push(acc.record());
          s.log(describeRun(acc.record()));
        }

        s.log(`${mode}: saturation, ${sat.count} rounds of ${fmt(sat.sliceS)} s per target`);
        const satAcc = targets.map((t) => new Accumulator('saturation', mode, t, st));
        for (let round = 0; round < sat.count; round++) {
          for (const acc of satAcc) {
            const spec = chatRequest(acc.target.origin, mode, st.apiKey);
            await acc.measure(() => runAutocannon({ request: spec, connections: c.saturationConnections, durationS: sat.sliceS }));
          }
        }
        for (const acc of satAcc) {
          runs.push(acc.record());
          s.log(describeRun(acc.record()));
        }
      }
      memory.tollgate = memoryMB(st.tollgate.proc.pid);
      memory.floor = memoryMB(st.floor.proc.pid);
      memory.direct = memoryMB(st.sim.proc.pid);
    } finally {
      // Under --cpu-prof, Tollgate writes its profile as it exits: give it time.
      for (const t of [stack?.tollgate, stack?.floor, stack?.sim]) {
        if (t) await t.proc.stop(c.profile && t.name === 'tollgate' ? 30_000 : 5_000);
      }
      rmSync(tmp, { recursive: true, force: true });
      if (c.pin) pinSelf(`0-${cpus().length - 1}`);
    }
    const st = stack;
    if (!st) throw new Error('core: the processes did not start');

    const report = buildReport({ runs, memory, tollgateIdleRss: st.tollgateIdleRss, core: c, settings: s, rate, sat, date, machine, maxTokens: MAX_TOKENS, profileDir: st.profileDir });
    s.log('spool write per answer: in process, LedgerWriter.record vs the former one write per turn');
    const spool = await measureSpoolWrite(Math.max(1, s.seconds / 2), Math.max(0.5, s.warmupSeconds / 2));
    const spoolSection = describeSpoolWrite(spool, runs);
    return {
      summary: `${report.summary}\n\n${spoolSection.text}`,
      markdown: `${report.markdown}\n\n${spoolSection.markdown}`,
      verdicts: report.verdicts,
      raw: {
        scenario: 'core',
        date: date.toISOString(),
        machine,
        settings: { ...c, seconds: s.seconds, warmupSeconds: s.warmupSeconds, maxTokens: MAX_TOKENS, prompt: PROMPT },
        targets: TARGETS,
        runs,
        derived: report.derived,
        memory: { tollgateIdle: st.tollgateIdleRss, afterRuns: memory },
        verdicts: report.verdicts,
        caveats: report.caveats,
        spoolWrite: spool,
        ...(st.profileDir ? { profileDir: st.profileDir } : {}),
        ...(report.profile ? { profile: report.profile } : {}),
      },
    };
  },
};

/** The spool write's cost per answer, and its share of Tollgate's CPU per request at the fixed rate (JSON). */
function describeSpoolWrite(w: SpoolWriteCost, runs: RunRecord[]): { text: string; markdown: string } {
  const cpu = runs.find((r) => r.kind === 'rate' && r.mode === 'json' && r.target === 'tollgate')?.cpu.targetUsPerReq;
  const added = w.perEventUs.p50 - w.batchedUs.p50;
  const share = (us: number) => (cpu ? `${fmt((us / cpu) * 100, 1)}% of` : 'n/a: no');
  const lines = [
    `Spool write per answer (usage event on disk before the last byte; in process, ${w.events.toLocaleString('en-US')} events each way, alternating batches of 200):`,
    `- now, one write(2) per event on the request's turn: median ${fmt(w.perEventUs.p50, 2)} µs per event (p99 of batches ${fmt(w.perEventUs.p99, 2)} µs) = ${share(w.perEventUs.p50)} Tollgate's CPU per JSON request at the fixed rate (${cpu === undefined ? '?' : fmt(cpu, 0)} µs)`,
    `- before, one write per ${w.perWrite} events a turn later: median ${fmt(w.batchedUs.p50, 2)} µs per event (p99 ${fmt(w.batchedUs.p99, 2)} µs)`,
    `- added by writing before the last byte: ${fmt(added, 2)} µs per request (${share(Math.max(0, added))} the request's CPU)`,
  ];
  return { text: lines.join('\n'), markdown: ['### Spool write per answer', '', ...lines.slice(1), '', lines[0]!.replace(/:$/, '.')].join('\n') };
}
