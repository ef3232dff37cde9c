/**
 * Test harness: a real gateway on a loopback port (port 0), with a temp SQLite folder, silent
 * logs, and the bootstrap keys at hand; optionally a standalone simulator on another port.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildConfig } from '../../src/config/loader.js';
import type { RawConfig } from '../../src/config/schema.js';
import { type Gateway, type GatewayOptions, createGateway } from '../../src/main.js';
import { createLogger } from '../../src/observability/logger.js';
import { type SimServer, startSimServer } from '../../src/providers/simulated/server.js';
import type { SimModelConfig } from '../../src/config/schema.js';

export interface TestGateway {
  gateway: Gateway;
  url: string;
  apiKey: string;
  adminKey: string;
  tenantId: string;
  /** Resolves once every request received so far has settled and its usage is in the Ledger. */
  settled(): Promise<void>;
  close(): Promise<void>;
}

/** `options`: extra gateway options (e.g. `spanExporter`); the logger is always the silent test one. */
export async function startGateway(raw: RawConfig = {}, options: Omit<GatewayOptions, 'logger'> = {}): Promise<TestGateway> {
  const dir = raw.storage?.dir ?? mkdtempSync(join(tmpdir(), 'tollgate-test-'));
  const config = buildConfig({
    ...raw,
    server: { port: 0, host: '127.0.0.1', ...raw.server },
    storage: raw.storage?.kind === 'distributed' ? { ...raw.storage, dir } : { ...raw.storage, kind: 'embedded', dir },
    logging: { level: 'silent', ...raw.logging },
  });
  const gateway = await createGateway(config, { ...options, logger: createLogger(process.env['TEST_LOG_LEVEL'] ?? 'silent') });
  // A second gateway on a shared store (auth.bootstrap: false) uses the first one's keys.
  const boot = config.auth.bootstrap ? await gateway.bootstrap() : undefined;
  if (config.auth.bootstrap && !boot) throw new Error('bootstrap did not run on a fresh store');
  const url = await gateway.listen();
  return {
    gateway,
    url,
    apiKey: boot?.demoKey.secret ?? '',
    adminKey: boot?.adminKey.secret ?? '',
    tenantId: boot?.tenant.id ?? 'default',
    async settled() {
      await gateway.settled();
      await gateway.ledger.flush();
    },
    async close() {
      await gateway.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Simulator models with no latency (tests), unless overridden. */
export const FAST_MODELS: Record<string, SimModelConfig> = {
  'sim-small': { type: 'chat', ttftMs: { median: 0, p95: 0 }, tokensPerSecond: 0, outputTokens: { min: 8, max: 24 }, dimensions: 64 },
  'sim-large': { type: 'chat', ttftMs: { median: 0, p95: 0 }, tokensPerSecond: 0, outputTokens: { min: 16, max: 40 }, dimensions: 64 },
  'sim-embed': { type: 'embedding', ttftMs: { median: 0, p95: 0 }, tokensPerSecond: 0, outputTokens: { min: 0, max: 0 }, dimensions: 64 },
};

export async function startSim(models: Record<string, SimModelConfig> = FAST_MODELS): Promise<SimServer> {
  return startSimServer({ host: '127.0.0.1', port: 0, models });
}

/** A gateway config whose providers are standalone simulators reached over HTTP. */
export function httpSimConfig(sims: Record<string, SimServer>, models: RawConfig['models'], extra: RawConfig = {}): RawConfig {
  const providers: NonNullable<RawConfig['providers']> = {};
  for (const [id, sim] of Object.entries(sims)) providers[id] = { kind: 'openai-compatible', baseUrl: sim.url };
  return { ...extra, providers, models };
}

export interface JsonResponse {
  status: number;
  headers: Headers;
  body: any;
}

export async function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<JsonResponse> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* leave as text */
  }
  return { status: res.status, headers: res.headers, body: parsed };
}

export function auth(key: string): Record<string, string> {
  return { authorization: `Bearer ${key}` };
}

export interface SseResult {
  status: number;
  headers: Headers;
  /** Parsed `data:` payloads except [DONE]. */
  events: any[];
  sawDone: boolean;
  raw: string;
}

/** Posts a streaming request and collects the SSE events. */
export async function postStream(url: string, body: unknown, headers: Record<string, string> = {}): Promise<SseResult> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  const raw = await res.text();
  const events: any[] = [];
  let sawDone = false;
  for (const block of raw.split('\n\n')) {
    const data = block
      .split('\n')
      .filter((l) => l.startsWith('data: '))
      .map((l) => l.slice(6))
      .join('\n');
    if (!data) continue;
    if (data === '[DONE]') sawDone = true;
    else events.push(JSON.parse(data));
  }
  return { status: res.status, headers: res.headers, events, sawDone, raw };
}

export const hello = (model = 'sim-small', extra: Record<string, unknown> = {}) => ({
  model,
  messages: [{ role: 'user', content: 'Hello there, how are you?' }],
  ...extra,
});

export interface PeerGateway {
  gateway: Gateway;
  url: string;
  close(): Promise<void>;
}

/**
 * A second gateway process on the same distributed storage as one started with `startGateway(raw)`
 * (same PostgreSQL schema and Redis prefix, its own local folder, no bootstrap: it uses the first
 * one's keys).
 */
export async function startPeer(raw: RawConfig): Promise<PeerGateway> {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-peer-'));
  const gateway = await createGateway(
    buildConfig({ ...raw, server: { port: 0, host: '127.0.0.1' }, auth: { ...raw.auth, bootstrap: false }, storage: { ...(raw.storage as object), kind: 'distributed', dir } as RawConfig['storage'] }),
    { logger: createLogger(process.env['TEST_LOG_LEVEL'] ?? 'silent') },
  );
  const url = await gateway.listen();
  return {
    gateway,
    url,
    async close() {
      await gateway.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
