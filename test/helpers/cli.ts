/** Spawns the built CLI (dist/cli/index.js) as a user would, and reads what it prints. */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';

export const CLI = join(process.cwd(), 'dist', 'cli', 'index.js');

export interface RunningCli {
  child: ChildProcess;
  url: string;
  output: () => string;
  stop(): Promise<number | null>;
}

/** Starts `tollgate start ...` and resolves once it logs its URL. */
export function startCli(args: string[], cwd: string, timeoutMs = 20_000): Promise<RunningCli> {
  const child = spawn(process.execPath, [CLI, 'start', ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`gateway did not start in ${timeoutMs} ms:\n${out}`));
    }, timeoutMs);
    const onData = (buf: Buffer) => {
      out += buf.toString();
      const m = /"url":"(http:\/\/[^"]+)".*"msg":"tollgate listening"/.exec(out);
      // The banner (first start only) is printed right after the listening line.
      if (m?.[1] && (!out.includes('created your first keys') || out.includes('Try it:'))) {
        clearTimeout(timer);
        child.stdout?.off('data', onData);
        child.stdout?.on('data', (b: Buffer) => (out += b.toString()));
        resolve({
          child,
          url: m[1],
          output: () => out,
          stop: () =>
            new Promise((res) => {
              if (child.exitCode !== null) return res(child.exitCode);
              child.once('exit', (code) => res(code));
              child.kill('SIGTERM');
            }),
        });
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', (b: Buffer) => (out += b.toString()));
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`gateway exited with ${code}:\n${out}`));
    });
  });
}

/** Runs a one-shot CLI command; resolves with its exit code and output. */
export function runCli(args: string[], cwd: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

export function bannerKeys(output: string): { admin: string; demo: string } {
  const admin = /admin key \(for [^)]*\): (\S+)/.exec(output)?.[1];
  const demo = /demo API key \(tenant "[^"]+"\): (\S+)/.exec(output)?.[1];
  if (!admin || !demo) throw new Error(`no keys in output:\n${output}`);
  return { admin, demo };
}
