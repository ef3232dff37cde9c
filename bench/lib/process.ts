/**
 * Child-process management for benchmarks: spawn a command in its own process group, wait until
 * it answers HTTP, read its memory and CPU time from /proc, and stop it (group included) by PID.
 *
 * Every process started here is registered, so an exception, Ctrl-C or SIGTERM of the bench
 * still stops it (`stopAll`, plus a synchronous SIGKILL of every group on process exit).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus } from 'node:os';

export interface StartOptions {
  /** Short label for logs and errors, e.g. "simulator". */
  name: string;
  command: string;
  args: string[];
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /**
   * Where the child's stdout goes: 'null' (/dev/null, the default: costs nothing and keeps no
   * memory) or 'tail' (piped; the last bytes are kept for error messages).
   */
  stdout?: 'null' | 'tail';
  /**
   * Appends the child's stdout to this file instead (e.g. a gateway's log kept for reading after a
   * run); takes precedence over `stdout`.
   */
  stdoutFile?: string;
  /** CPU list to pin the process (all its threads) to, e.g. "1" (via taskset; see canPin). */
  cpus?: string;
}

export interface ManagedProcess {
  readonly name: string;
  readonly pid: number;
  /** Set once the process has exited. */
  readonly exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  /** Resolves when the process exits. */
  readonly exited: Promise<void>;
  /** The last few KB of stderr (and of stdout when stdout: 'tail'). */
  output(): string;
  /** SIGTERM to the process group; SIGKILL after `graceMs`. Resolves once it has exited. */
  stop(graceMs?: number): Promise<void>;
}

const TAIL_BYTES = 16 * 1024;
const running = new Set<ManagedProcess>();

/** A bounded tail of a stream: never holds more than TAIL_BYTES. */
class Tail {
  private text = '';
  push(chunk: Buffer): void {
    this.text += chunk.toString('utf8');
    if (this.text.length > TAIL_BYTES * 2) this.text = this.text.slice(-TAIL_BYTES);
  }
  toString(): string {
    return this.text.slice(-TAIL_BYTES);
  }
}

/** Signals a whole process group, ignoring "no such process". */
function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

/** Starts a command in its own process group (so stopping it stops its children too). */
export function startProcess(opts: StartOptions): ManagedProcess {
  const nullFd = opts.stdoutFile !== undefined ? openSync(opts.stdoutFile, 'a') : opts.stdout === 'tail' ? undefined : openSync('/dev/null', 'w');
  let child: ChildProcess;
  try {
    // taskset execs the command: the PID stays the command's own.
    const [command, args] = opts.cpus === undefined ? [opts.command, opts.args] : ['taskset', ['-c', opts.cpus, opts.command, ...opts.args]];
    child = spawn(command, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      detached: true,
      stdio: ['ignore', nullFd ?? 'pipe', 'pipe'],
    });
  } finally {
    if (nullFd !== undefined) closeSync(nullFd);
  }
  if (child.pid === undefined) throw new Error(`${opts.name}: could not spawn ${opts.command}`);
  const pid = child.pid;
  const tail = new Tail();
  child.stderr?.on('data', (c: Buffer) => tail.push(c));
  child.stdout?.on('data', (c: Buffer) => tail.push(c));

  let exit: ManagedProcess['exit'];
  const exited = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exit = { code, signal };
      running.delete(proc);
      resolve();
    });
    child.once('error', (err) => {
      tail.push(Buffer.from(`spawn error: ${err.message}\n`));
      exit ??= { code: -1, signal: null };
      running.delete(proc);
      resolve();
    });
  });

  const proc: ManagedProcess = {
    name: opts.name,
    pid,
    get exit() {
      return exit;
    },
    exited,
    output: () => tail.toString(),
    async stop(graceMs = 5_000) {
      if (exit) {
        // The leader is gone; make sure nothing of its group survives.
        killGroup(pid, 'SIGKILL');
        return;
      }
      killGroup(pid, 'SIGTERM');
      const timer = setTimeout(() => killGroup(pid, 'SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
      killGroup(pid, 'SIGKILL');
    },
  };
  running.add(proc);
  return proc;
}

const cleanups = new Set<() => Promise<unknown>>();

/**
 * Registers clean-up work (e.g. dropping a database schema a run created) that `stopAll` runs
 * after stopping the processes, so a failed or interrupted run (Ctrl-C) still does it. Returns
 * the function that unregisters it, for when the scenario has cleaned up by itself.
 */
export function onCleanup(fn: () => Promise<unknown>): () => void {
  cleanups.add(fn);
  return () => cleanups.delete(fn);
}

/** Stops every process this module started, most recent first, then runs the registered clean-ups. */
export async function stopAll(): Promise<void> {
  const list = [...running].reverse();
  for (const p of list) await p.stop();
  for (const fn of [...cleanups]) {
    cleanups.delete(fn);
    await fn().catch(() => undefined);
  }
}

/** Last resort on exit: SIGKILL every group still registered (synchronous). */
process.once('exit', () => {
  for (const p of running) killGroup(p.pid, 'SIGKILL');
});

/** Runs a command to completion (bounded), returning its stdout; throws with stderr on failure. */
export async function runCommand(name: string, command: string, args: string[], opts: { cwd?: string; timeoutMs?: number } = {}): Promise<string> {
  const child = spawn(command, args, { cwd: opts.cwd, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  const err = new Tail();
  child.stdout.on('data', (c: Buffer) => out.push(c));
  child.stderr.on('data', (c: Buffer) => err.push(c));
  const pid = child.pid;
  const timer = setTimeout(() => pid !== undefined && killGroup(pid, 'SIGKILL'), opts.timeoutMs ?? 60_000);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => {
    child.once('exit', (c, s) => resolve([c, s]));
    child.once('error', (e) => {
      err.push(Buffer.from(e.message));
      resolve([-1, null]);
    });
  });
  clearTimeout(timer);
  const stdout = Buffer.concat(out).toString('utf8');
  if (code !== 0) {
    throw new Error(`${name} failed (${signal ?? `exit ${code}`}): ${command} ${args.join(' ')}\n${err.toString()}${stdout}`.trimEnd());
  }
  return stdout;
}

let tasksetAvailable: boolean | undefined;

/** True when processes can be pinned to CPUs (Linux with taskset, at least 2 CPUs). */
export function canPin(): boolean {
  if (tasksetAvailable === undefined) {
    try {
      execFileSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore', timeout: 5_000 });
      tasksetAvailable = true;
    } catch {
      tasksetAvailable = false;
    }
  }
  return tasksetAvailable && cpus().length >= 2;
}

/** Pins every thread of this process to `cpuList` (e.g. "0", or "0-1" to undo). */
export function pinSelf(cpuList: string): void {
  execFileSync('taskset', ['-a', '-p', '-c', cpuList, String(process.pid)], { stdio: 'ignore', timeout: 5_000 });
}

/** A TCP port free on 127.0.0.1 right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Polls `url` until it answers with a 2xx status. Fails fast if `proc` exits, and after
 * `timeoutMs` with the process's recent output.
 */
export async function waitForHttp(url: string, proc: ManagedProcess, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    if (proc.exit) {
      throw new Error(`${proc.name} exited (${proc.exit.signal ?? `code ${proc.exit.code}`}) before ${url} answered:\n${proc.output()}`.trimEnd());
    }
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1_000) });
      await res.arrayBuffer();
      if (res.ok) return;
      last = `HTTP ${res.status}`;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${proc.name}: ${url} did not answer within ${timeoutMs} ms (last: ${last}):\n${proc.output()}`.trimEnd());
}

function readProc(pid: number | 'self', file: string): string {
  return readFileSync(`/proc/${pid}/${file}`, 'utf8');
}

/** Resident set size and its peak, in MB, from /proc/PID/status (VmRSS, VmHWM). */
export function memoryMB(pid: number): { rssMB: number; peakRssMB: number } {
  const status = readProc(pid, 'status');
  const kb = (field: string): number => {
    const m = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(status);
    if (!m?.[1]) throw new Error(`no ${field} in /proc/${pid}/status`);
    return Number(m[1]);
  };
  return { rssMB: kb('VmRSS') / 1024, peakRssMB: kb('VmHWM') / 1024 };
}

/** Clock ticks per second of /proc CPU times (USER_HZ); 100 on every mainstream Linux build. */
const USER_HZ = 100;

/** CPU time (user + system) a process has used so far, in ms, from /proc/PID/stat. */
export function cpuTimeMs(pid: number | 'self'): number {
  const stat = readProc(pid, 'stat');
  // The command name (field 2) may contain spaces: split after its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14 and 15 (utime, stime) are at 11 and 12 once pid and comm are dropped.
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / USER_HZ;
}

/**
 * CPU time (ms) of each process still alive among `pids`; processes gone meanwhile are left out.
 */
export function cpuTimesMs(pids: number[]): Map<number, number> {
  const out = new Map<number, number>();
  for (const pid of pids) {
    try {
      out.set(pid, cpuTimeMs(pid));
    } catch {
      // exited
    }
  }
  return out;
}

/**
 * PIDs of every process (any user) whose command name (/proc/PID/comm) is one of `names`, e.g.
 * `['redis-server', 'postgres']` (PostgreSQL runs one process per connection, so call it again
 * to see new ones). Empty where /proc is not readable.
 */
export function pidsNamed(names: string[]): number[] {
  const wanted = new Set(names);
  const out: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (wanted.has(readFileSync(`/proc/${entry}/comm`, 'utf8').trim())) out.push(Number(entry));
    } catch {
      // exited, or not ours to read
    }
  }
  return out;
}

/** Busy CPU time of the whole machine so far, in ms (all cores), from /proc/stat. */
export function machineBusyMs(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is already counted in user)
  const busy = (v[0] ?? 0) + (v[1] ?? 0) + (v[2] ?? 0) + (v[5] ?? 0) + (v[6] ?? 0) + (v[7] ?? 0);
  return (busy * 1000) / USER_HZ;
}

/**
 * Waits until the processes are (nearly) idle: less than `threshold` of a core used over a
 * `windowMs` window, or `maxMs` passed. Returns how long it waited (ms). Used to let a target
 * finish work a load left behind (and one-off work such as a lazily loaded module) before the
 * next measurement starts.
 */
export async function waitForIdle(pids: number[], opts: { maxMs: number; windowMs?: number; threshold?: number }): Promise<number> {
  const windowMs = opts.windowMs ?? 100;
  const threshold = opts.threshold ?? 0.1;
  const unique = [...new Set(pids)];
  const total = () => unique.reduce((sum, pid) => sum + cpuTimeMs(pid), 0);
  const start = Date.now();
  for (;;) {
    const before = total();
    const t0 = Date.now();
    await new Promise((r) => setTimeout(r, windowMs));
    const used = (total() - before) / Math.max(1, Date.now() - t0);
    if (used < threshold || Date.now() - start >= opts.maxMs) return Date.now() - start;
  }
}

/**
 * Waits (up to `maxMs`) until the whole machine is quiet: less than `thresholdCores` of CPU busy
 * over `windowMs`. Returns the last measured load in cores. On a shared machine this keeps a run
 * from starting in the middle of someone else's test suite; it cannot keep them away after.
 */
export async function waitForQuietMachine(opts: { maxMs: number; thresholdCores?: number; windowMs?: number; onWait?: (cores: number) => void }): Promise<number> {
  const threshold = opts.thresholdCores ?? 0.3;
  const windowMs = opts.windowMs ?? 2_000;
  const start = Date.now();
  let announced = false;
  for (;;) {
    const b0 = machineBusyMs() - cpuTimeMs('self');
    const t0 = Date.now();
    await new Promise((r) => setTimeout(r, windowMs));
    const cores = (machineBusyMs() - cpuTimeMs('self') - b0) / (Date.now() - t0);
    if (cores < threshold || Date.now() - start >= opts.maxMs) return cores;
    if (!announced) opts.onWait?.(cores);
    announced = true;
  }
}
