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
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { runAutocannon } from '../lib/autocannon.js';
import { combine, isClean, problems, type HttpRequestSpec, type LoadSlice } from '../lib/load.js';
import { PacedSession } from '../lib/paced.js';
import {
  canPin,
  cpuTimeMs,
  freePort,
  machineBusyMs,
  memoryMB,
  pinSelf,
  runCommand,
  startProcess,
  waitForHttp,
  waitForIdle,
  type ManagedProcess,
} from '../lib/process.js';
import { BENCH_DIR, fileStamp, machineInfo } from '../lib/results.js';
import type { BenchSettings, Scenario, ScenarioReport } from '../lib/scenario.js';
import { fmt } from '../lib/table.js';
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

/** Longest wait after a slice for the target to go idle. */
const SLICE_SETTLE_MAX_MS = 3_000;

const PROMPT = 'Say hello in one short sentence.';
const MAX_TOKENS = 16;

function chatRequest(origin: string, mode: Mode, apiKey: string): HttpRequestSpec {
  const body: Record<string, unknown> = { model: 'sim-small', messages: [{ role: 'user', content: PROMPT }], max_tokens: MAX_TOKENS };
  if (mode === 'stream') body.stream = true;
  return {
    origin,
    path: '/v1/chat/completions',
    method: 'POST',
    // The same bytes to every target: direct and floor ignore / pass the key along.
    headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey}` },
    body: JSON.stringify(body),
    // The paced driver passes the last 64 characters, autocannon the whole body.
    verify: mode === 'stream' ? (b) => b.endsWith('data: [DONE]\n\n') : (b) => b.trimEnd().endsWith('}'),
  };
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

/** The environment children run with: no inherited loader flags, no stray config file. */
function childEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  delete env.TOLLGATE_CONFIG;
  return env;
}

async function startStack(s: BenchSettings, c: CoreSettings, tmp: string, stamp: string): Promise<Stack> {
  const cli = join(s.root, 'dist', 'cli', 'index.js');
  if (!existsSync(cli)) throw new Error(`${cli} not found: run \`npm run build\` first (npm run bench does)`);
  const env = childEnv();
  const [simPort, floorPort, tollgatePort] = [await freePort(), await freePort(), await freePort()];

  s.log(`starting simulator on :${simPort}`);
  const loadCpu = c.pin ? { cpus: LOAD_CPU } : {};
  const proxyCpu = c.pin ? { cpus: PROXY_CPU } : {};
  const simProc = startProcess({ name: 'simulator', command: process.execPath, args: [cli, 'sim', '--port', String(simPort), '--latency', '0', '--tps', '0'], cwd: tmp, env, ...loadCpu });
  const sim: Target = { name: 'direct', origin: `http://127.0.0.1:${simPort}`, proc: simProc };
  await waitForHttp(`${sim.origin}/v1/models`, simProc);

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

  const configFile = join(tmp, 'tollgate.yaml');
  writeFileSync(
    configFile,
    toYaml({
      server: { host: '127.0.0.1', port: tollgatePort, shutdownGraceMs: 2_000 },
      storage: { kind: 'embedded', dir: join(tmp, 'state') },
      auth: { bootstrap: false },
      logging: { level: 'info' },
      metrics: { enabled: true },
      providers: { upstream: { kind: 'openai-compatible', baseUrl: `${sim.origin}/v1` } },
      models: { 'sim-small': { type: 'chat', deployments: [{ provider: 'upstream' }], price: { input: 0.15, output: 0.6 } } },
    }),
  );
  s.log('creating tenant and API key');
  await runCommand('tollgate tenants create', process.execPath, [cli, 'tenants', 'create', 'default', '--id', 'default', '--config', configFile], { cwd: tmp, timeoutMs: 60_000 });
  const created = await runCommand('tollgate keys create', process.execPath, [cli, 'keys', 'create', '--json', '--config', configFile], { cwd: tmp, timeoutMs: 60_000 });
  let apiKey: string;
  try {
    apiKey = (JSON.parse(created) as { key: string }).key;
  } catch {
    throw new Error(`tollgate keys create --json printed no JSON with a key field:\n${created}`);
  }
  if (typeof apiKey !== 'string' || apiKey === '') throw new Error(`tollgate keys create --json printed no key:\n${created}`);

  let profileDir: string | undefined;
  const nodeFlags: string[] = [];
  if (c.profile) {
    profileDir = join(BENCH_DIR, 'results', 'profiles', `core-${stamp}`);
    mkdirSync(profileDir, { recursive: true });
    nodeFlags.push('--cpu-prof', '--cpu-prof-dir', profileDir);
  }
  s.log(`starting tollgate on :${tollgatePort}${c.profile ? ' (with --cpu-prof)' : ''}`);
  const tollgateProc = startProcess({
    name: 'tollgate',
    command: process.execPath,
    args: [...nodeFlags, cli, 'start', '--config', configFile, '--port', String(tollgatePort)],
    cwd: tmp,
    env,
    stdout: 'null',
    ...proxyCpu,
  });
  const tollgate: Target = { name: 'tollgate', origin: `http://127.0.0.1:${tollgatePort}`, proc: tollgateProc };
  await waitForHttp(`${tollgate.origin}/healthz`, tollgateProc, 60_000);
  const tollgateIdleRss = memoryMB(tollgateProc.pid);

  // One request through each target before measuring anything: fail early and clearly.
  for (const t of [sim, floor, tollgate]) {
    for (const mode of MODES) {
      const spec = chatRequest(t.origin, mode, apiKey);
      const res = await fetch(`${t.origin}${spec.path}`, { method: 'POST', headers: spec.headers, body: spec.body ?? null, signal: AbortSignal.timeout(10_000) });
      const text = await res.text();
      if (!res.ok || !spec.verify?.(text.slice(-64))) {
        throw new Error(`${t.proc.name} (${mode}) answered HTTP ${res.status}:\n${text.slice(0, 2_000)}\n${t.proc.output()}`.trimEnd());
      }
    }
  }
  return { sim, floor, tollgate, apiKey, tollgateIdleRss, ...(profileDir ? { profileDir } : {}) };
}

// ---------------------------------------------------------------------------------------------
// Runs

async function simTotal(sim: Target): Promise<number> {
  const res = await fetch(`${sim.origin}/_sim/stats`, { signal: AbortSignal.timeout(5_000) });
  return ((await res.json()) as { total: number }).total;
}

/** Slices of one (kind, mode, target) and the resources they used. */
class Accumulator {
  readonly slices: LoadSlice[] = [];
  private cpu = { target: 0, sim: 0, self: 0, foreign: 0, wallMs: 0 };
  private simCalls = 0;

  constructor(
    readonly kind: RunRecord['kind'],
    readonly mode: Mode,
    readonly target: Target,
  ) {}

  /** Runs one slice, charging CPU time and upstream calls to it. */
  async measure(stack: Stack, run: () => Promise<LoadSlice>): Promise<LoadSlice> {
    const simPid = stack.sim.proc.pid;
    const targetPid = this.target.proc.pid;
    const simBefore = await simTotal(stack.sim);
    const t0 = process.hrtime.bigint();
    const before = { target: cpuTimeMs(targetPid), sim: cpuTimeMs(simPid), self: cpuTimeMs('self'), busy: machineBusyMs() };
    const slice = await run();
    // Work a slice leaves behind (streams cut off at its end, settle) belongs to it, and must
    // not land in the next target's slice.
    await waitForIdle([targetPid, simPid], { maxMs: SLICE_SETTLE_MAX_MS });
    const after = { target: cpuTimeMs(targetPid), sim: cpuTimeMs(simPid), self: cpuTimeMs('self'), busy: machineBusyMs() };
    this.cpu.wallMs += Number(process.hrtime.bigint() - t0) / 1e6;
    this.simCalls += (await simTotal(stack.sim)) - simBefore;
    const d = { target: after.target - before.target, sim: after.sim - before.sim, self: after.self - before.self, busy: after.busy - before.busy };
    this.cpu.target += d.target;
    this.cpu.sim += d.sim;
    this.cpu.self += d.self;
    this.cpu.foreign += Math.max(0, d.busy - d.self - d.sim - (targetPid === simPid ? 0 : d.target));
    this.slices.push(slice);
    return slice;
  }

  record(): RunRecord {
    const load = combine(this.slices);
    const n = Math.max(1, load.sent);
    return {
      kind: this.kind,
      mode: this.mode,
      target: this.target.name,
      load,
      cpu: {
        targetUsPerReq: (this.cpu.target * 1000) / n,
        simUsPerReq: (this.cpu.sim * 1000) / n,
        loadGenUsPerReq: (this.cpu.self * 1000) / n,
        foreignCores: this.cpu.foreign / this.cpu.wallMs,
      },
      ...(this.target.name === 'direct'
        ? {}
        : { upstreamCallsPerRequest: this.simCalls / Math.max(1, load.answered), upstream: { calls: this.simCalls, sent: load.sent, answered: load.answered } }),
    };
  }
}

function describeRun(r: RunRecord): string {
  const l = r.load;
  const issues = problems(l);
  return (
    `${r.mode.padEnd(6)} ${r.kind.padEnd(10)} ${r.target.padEnd(8)} ${fmt(l.rps, 0).padStart(6)} req/s  ` +
    `p50 ${fmt(l.latencyMs.p50)}  p90 ${fmt(l.latencyMs.p90)}  p99 ${fmt(l.latencyMs.p99)} ms  ` +
    `cpu ${fmt(r.cpu.targetUsPerReq, 0)} µs/req  other load ${fmt(r.cpu.foreignCores)} cores` +
    (issues ? `  !! ${issues}` : '')
  );
}

/**
 * Splits `seconds` into rounds of `slice` seconds; each round runs every target once, in turn, so a
 * burst of outside load on the shared machine falls on all targets rather than on one.
 */
function rounds(seconds: number, slice: number): { count: number; sliceS: number } {
  const count = Math.max(1, Math.round(seconds / slice));
  return { count, sliceS: seconds / count };
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
        s.log(`warm-up ${t.name}: ${s.warmupSeconds} s, ${c.saturationConnections} connections, JSON and SSE alternating`);
        const w = await runAutocannon({
          request: MODES.map((m) => chatRequest(t.origin, m, st.apiKey)),
          connections: c.saturationConnections,
          durationS: s.warmupSeconds,
        });
        const wr = combine([w]);
        if (!isClean(wr)) s.log(`  warm-up of ${t.name}: ${problems(wr)}`);
      }
      // Warm-up ends by cutting streams off, which makes Tollgate load its tokenizer (~0.4 s of
      // blocking CPU, more on a busy machine): let every process settle before measuring.
      const waited = await waitForIdle(targets.map((t) => t.proc.pid), { maxMs: 15_000, windowMs: 250, threshold: 0.05 });
      s.log(`targets idle after ${waited} ms`);

      for (const mode of MODES) {
        s.log(`${mode}: fixed rate, ${rate.count} rounds of ${fmt(rate.sliceS)} s per target`);
        const rateAcc = targets.map((t) => new Accumulator('rate', mode, t));
        const sessions = targets.map((t) => new PacedSession(chatRequest(t.origin, mode, st.apiKey), c.rateConnections));
        try {
          for (let round = 0; round < rate.count; round++) {
            for (const [i, acc] of rateAcc.entries()) {
              const session = sessions[i] as PacedSession;
              const spec = chatRequest(acc.target.origin, mode, st.apiKey);
              await acc.measure(st, () =>
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
        const satAcc = targets.map((t) => new Accumulator('saturation', mode, t));
        for (let round = 0; round < sat.count; round++) {
          for (const acc of satAcc) {
            const spec = chatRequest(acc.target.origin, mode, st.apiKey);
            await acc.measure(st, () => runAutocannon({ request: spec, connections: c.saturationConnections, durationS: sat.sliceS }));
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
    return {
      summary: report.summary,
      markdown: report.markdown,
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
        ...(st.profileDir ? { profileDir: st.profileDir } : {}),
        ...(report.profile ? { profile: report.profile } : {}),
      },
    };
  },
};
