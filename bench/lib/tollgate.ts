/**
 * Tollgate processes for benchmarks: the simulator upstream (`tollgate sim`), gateways
 * (`tollgate start` with a generated config; `launchGateway` sets one up whole), a tenant and API
 * key made with the CLI, and the chat request every scenario sends.
 *
 * Everything is started with lib/process.ts, so it is stopped whatever happens.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify as toYaml } from 'yaml';
import type { HttpRequestSpec } from './load.js';
import { freePort, memoryMB, runCommand, startProcess, waitForHttp, type ManagedProcess } from './process.js';

export type Mode = 'json' | 'stream';

export const PROMPT = 'Say hello in one short sentence.';
export const MAX_TOKENS = 16;

/** A process answering HTTP on 127.0.0.1. */
export interface HttpTarget {
  origin: string;
  proc: ManagedProcess;
}

/** The environment children run with: no inherited loader flags, no stray config file. */
export function childEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  delete env.TOLLGATE_CONFIG;
  return env;
}

/** dist/cli/index.js, which `npm run bench` builds first. */
export function tollgateCli(root: string): string {
  const cli = join(root, 'dist', 'cli', 'index.js');
  if (!existsSync(cli)) throw new Error(`${cli} not found: run \`npm run build\` first (npm run bench does)`);
  return cli;
}

/** `tollgate sim --latency 0 --tps 0`: instant answers (both flags matter, see bench/README.md). */
export async function startSimulator(opts: { cli: string; cwd: string; env: NodeJS.ProcessEnv; port?: number; cpus?: string }): Promise<HttpTarget> {
  const port = opts.port ?? (await freePort());
  const proc = startProcess({
    name: 'simulator',
    command: process.execPath,
    args: [opts.cli, 'sim', '--port', String(port), '--latency', '0', '--tps', '0'],
    cwd: opts.cwd,
    env: opts.env,
    ...(opts.cpus !== undefined ? { cpus: opts.cpus } : {}),
  });
  const origin = `http://127.0.0.1:${port}`;
  await waitForHttp(`${origin}/v1/models`, proc);
  return { origin, proc };
}

/**
 * `tollgate sim --config FILE` serving `models`, each answering after a fixed `latencyMs` (a
 * log-normal with p95 = median is a constant: the simulator adds no spread of its own) with every
 * token at once. `tollgate sim --latency N` would draw from a spread (p95 = 2N).
 */
export async function startFixedLatencySimulator(opts: { cli: string; dir: string; latencyMs: number; models: string[]; env?: NodeJS.ProcessEnv }): Promise<HttpTarget> {
  const model = { type: 'chat', ttftMs: { median: opts.latencyMs, p95: opts.latencyMs }, tokensPerSecond: 0, outputTokens: { min: 12, max: 60 } };
  const config = {
    providers: { sim: { kind: 'simulated', models: Object.fromEntries(opts.models.map((m) => [m, model])) } },
    models: Object.fromEntries(opts.models.map((m) => [m, { type: 'chat', deployments: [{ provider: 'sim' }] }])),
  };
  const file = writeGatewayConfig(join(opts.dir, 'sim.yaml'), config);
  const port = await freePort();
  const proc = startProcess({ name: 'simulator', command: process.execPath, args: [opts.cli, 'sim', '--config', file, '--port', String(port)], cwd: opts.dir, env: opts.env ?? childEnv() });
  const origin = `http://127.0.0.1:${port}`;
  await waitForHttp(`${origin}/v1/models`, proc);
  return { origin, proc };
}

/**
 * A gateway config: one openai-compatible provider pointing at the simulator and the one model
 * the bench asks for (sim-small, priced), bootstrap off, info logging, metrics on. `extra` adds
 * or replaces top-level sections (e.g. `tiers`).
 */
export function gatewayConfig(opts: { port: number; simOrigin: string; storage: Record<string, unknown>; extra?: Record<string, unknown> }): Record<string, unknown> {
  return {
    server: { host: '127.0.0.1', port: opts.port, shutdownGraceMs: 2_000 },
    storage: opts.storage,
    auth: { bootstrap: false },
    logging: { level: 'info' },
    metrics: { enabled: true },
    providers: { upstream: { kind: 'openai-compatible', baseUrl: `${opts.simOrigin}/v1` } },
    models: { 'sim-small': { type: 'chat', deployments: [{ provider: 'upstream' }], price: { input: 0.15, output: 0.6 } } },
    ...opts.extra,
  };
}

export function writeGatewayConfig(file: string, config: Record<string, unknown>): string {
  writeFileSync(file, toYaml(config));
  return file;
}

/** Creates tenant `default` (in its default tier) and an API key for it with the CLI; returns the key. */
export async function createTenantAndKey(cli: string, configFile: string, cwd: string): Promise<string> {
  await runCommand('tollgate tenants create', process.execPath, [cli, 'tenants', 'create', 'default', '--id', 'default', '--config', configFile], { cwd, timeoutMs: 60_000 });
  const created = await runCommand('tollgate keys create', process.execPath, [cli, 'keys', 'create', '--json', '--config', configFile], { cwd, timeoutMs: 60_000 });
  let apiKey: string;
  try {
    apiKey = (JSON.parse(created) as { key: string }).key;
  } catch {
    throw new Error(`tollgate keys create --json printed no JSON with a key field:\n${created}`);
  }
  if (typeof apiKey !== 'string' || apiKey === '') throw new Error(`tollgate keys create --json printed no key:\n${created}`);
  return apiKey;
}

/** Creates an admin key with the CLI; returns it. */
export async function createAdminKey(cli: string, configFile: string, cwd: string): Promise<string> {
  const out = await runCommand('tollgate keys create --admin', process.execPath, [cli, 'keys', 'create', '--admin', '--json', '--config', configFile], { cwd, timeoutMs: 60_000 });
  let key: unknown;
  try {
    key = (JSON.parse(out) as { key?: unknown }).key;
  } catch {
    throw new Error(`tollgate keys create --admin --json printed no JSON with a key field:\n${out}`);
  }
  if (typeof key !== 'string' || key === '') throw new Error(`tollgate keys create --admin --json printed no key:\n${out}`);
  return key;
}

/**
 * `tollgate start --config FILE --port N`, waited for on /healthz. With `cpuProfileDir`, under
 * `--cpu-prof` (the profile is written as it exits: stop it with a long grace period).
 */
export async function startGateway(opts: {
  name: string;
  cli: string;
  configFile: string;
  port: number;
  cwd: string;
  env: NodeJS.ProcessEnv;
  cpuProfileDir?: string | undefined;
  cpus?: string;
  /** Where its stdout (the log) goes; /dev/null by default. */
  logFile?: string;
}): Promise<HttpTarget> {
  const nodeFlags = opts.cpuProfileDir ? ['--cpu-prof', '--cpu-prof-dir', opts.cpuProfileDir] : [];
  const proc = startProcess({
    name: opts.name,
    command: process.execPath,
    args: [...nodeFlags, opts.cli, 'start', '--config', opts.configFile, '--port', String(opts.port)],
    cwd: opts.cwd,
    env: opts.env,
    stdout: 'null',
    ...(opts.logFile !== undefined ? { stdoutFile: opts.logFile } : {}),
    ...(opts.cpus !== undefined ? { cpus: opts.cpus } : {}),
  });
  const origin = `http://127.0.0.1:${opts.port}`;
  await waitForHttp(`${origin}/healthz`, proc, 60_000);
  return { origin, proc };
}

/** A gateway `launchGateway` started, with what the scenario needs to talk to it. */
export interface Gateway extends HttpTarget {
  name: string;
  dir: string;
  configFile: string;
  /** The tenant's API key ('' with `keys: 'none'`). */
  apiKey: string;
  /** With `keys: 'api+admin'`. */
  adminKey?: string;
  /** RSS right after start-up. */
  idleRss: { rssMB: number; peakRssMB: number };
}

/**
 * A gateway of its own in `dir`: its config (`gatewayConfig`; embedded storage in `dir`/state
 * unless `storage` says otherwise) written to `dir`/tollgate.yaml, tenant `default` and an API key
 * (and an admin key) made with the CLI, then `tollgate start`, waited for.
 */
export async function launchGateway(o: {
  name: string;
  root: string;
  dir: string;
  simOrigin: string;
  log(line: string): void;
  storage?: Record<string, unknown>;
  extra?: Record<string, unknown>;
  /** Where its stdout (the log) goes; /dev/null by default. */
  logFile?: string;
  /** Which keys to make (default 'api'; 'none': a further process sharing another's storage). */
  keys?: 'api' | 'api+admin' | 'none';
  /** Said after "creating tenant and API key", e.g. where the storage is. */
  note?: string;
  cpuProfileDir?: string | undefined;
  cpus?: string;
}): Promise<Gateway> {
  const cli = tollgateCli(o.root);
  mkdirSync(o.dir, { recursive: true });
  const port = await freePort();
  const storage = o.storage ?? { kind: 'embedded', dir: join(o.dir, 'state') };
  const configFile = writeGatewayConfig(join(o.dir, 'tollgate.yaml'), gatewayConfig({ port, simOrigin: o.simOrigin, storage, ...(o.extra ? { extra: o.extra } : {}) }));
  const keys = o.keys ?? 'api';
  let apiKey = '';
  let adminKey: string | undefined;
  if (keys !== 'none') {
    o.log(`${o.name}: creating ${keys === 'api+admin' ? 'tenant, API key and admin key' : 'tenant and API key'}${o.note ?? ''}`);
    apiKey = await createTenantAndKey(cli, configFile, o.dir);
    if (keys === 'api+admin') adminKey = await createAdminKey(cli, configFile, o.dir);
  }
  o.log(`starting ${o.name} on :${port}${o.cpuProfileDir ? ' (with --cpu-prof)' : ''}`);
  const g = await startGateway({ name: o.name, cli, configFile, port, cwd: o.dir, env: childEnv(), cpuProfileDir: o.cpuProfileDir, ...(o.cpus !== undefined ? { cpus: o.cpus } : {}), ...(o.logFile !== undefined ? { logFile: o.logFile } : {}) });
  return { ...g, name: o.name, dir: o.dir, configFile, apiKey, ...(adminKey ? { adminKey } : {}), idleRss: memoryMB(g.proc.pid) };
}

/**
 * `POST /v1/chat/completions` for sim-small with one short prompt and `max_tokens: 16`
 * (`stream: true` in stream mode). `extraBody` fields (e.g. `user`) go after `max_tokens`.
 */
export function chatRequest(origin: string, mode: Mode, apiKey: string, extraBody: Record<string, unknown> = {}): HttpRequestSpec {
  const body: Record<string, unknown> = { model: 'sim-small', messages: [{ role: 'user', content: PROMPT }], max_tokens: MAX_TOKENS, ...extraBody };
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

/** Sends `spec` once; throws (with the process's output) unless it answers 2xx with a valid body. Returns the response headers. */
export async function checkRequest(spec: HttpRequestSpec, proc: ManagedProcess, label = proc.name): Promise<Headers> {
  const res = await fetch(`${spec.origin}${spec.path}`, { method: spec.method, headers: spec.headers, body: spec.body ?? null, signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  if (!res.ok || !spec.verify?.(text.slice(-64))) {
    throw new Error(`${label} answered HTTP ${res.status}:\n${text.slice(0, 2_000)}\n${proc.output()}`.trimEnd());
  }
  return res.headers;
}

/** Requests the simulator has served so far (`GET /_sim/stats`). */
export async function simTotal(simOrigin: string): Promise<number> {
  const res = await fetch(`${simOrigin}/_sim/stats`, { signal: AbortSignal.timeout(5_000) });
  return ((await res.json()) as { total: number }).total;
}
