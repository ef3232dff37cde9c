/**
 * No answer goes unbilled: a gateway killed (SIGKILL) right after it wrote an answer, before the
 * request settled, has the request's usage event on local disk; the next start puts it in the
 * ledger. Before the event was written ahead of the answer's last byte, a crash in that gap (settle
 * runs a turn after respond, and the spool write a turn after that) left the answer unbilled.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimServer } from '../../src/providers/simulated/server.js';
import { startCli } from '../helpers/cli.js';
import { auth, hello, startSim } from '../helpers/gateway.js';

const FIXTURE = join(process.cwd(), 'test', 'fixtures', 'crash-after-respond.mjs');

describe('an answer written just before a crash', () => {
  let sim: SimServer;
  const dirs: string[] = [];

  beforeAll(async () => {
    sim = await startSim();
  });
  afterAll(async () => {
    await sim.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  /** Starts the self-killing gateway in a fresh folder; resolves with its URL, demo key and exit. */
  async function crashingGateway(): Promise<{ dir: string; url: string; key: string; exited: Promise<NodeJS.Signals | null> }> {
    const dir = mkdtempSync(join(tmpdir(), 'tg-billed-'));
    dirs.push(dir);
    writeFileSync(
      join(dir, 'tollgate.yaml'),
      `server: { port: 0 }
metering: { ledgerFlushMs: 600000 }
providers:
  sim: { kind: openai-compatible, baseUrl: "${sim.url}" }
models:
  chat:
    deployments: [{ provider: sim, model: sim-small }]
    price: { input: 1, output: 2 }
`,
    );
    const child = spawn(process.execPath, [FIXTURE], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
    let out = '';
    let err = '';
    child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
    const line = await new Promise<string>((resolve, reject) => {
      child.stdout!.on('data', (b: Buffer) => {
        out += b.toString();
        const nl = out.indexOf('\n');
        if (nl >= 0) resolve(out.slice(0, nl));
      });
      child.once('exit', () => reject(new Error(`the gateway exited before listening:\n${out}\n${err}`)));
    });
    const { url, key } = JSON.parse(line) as { url: string; key: string };
    return { dir, url, key, exited };
  }

  /** The ledger's rows once a normal start has replayed what the crashed process left in its spool. */
  async function ledgerAfterRestart(dir: string): Promise<Array<{ status: number; cost_pico: number; completion_tokens: number }>> {
    const cli = await startCli([], dir);
    expect(await cli.stop()).toBe(0);
    const db = new Database(join(dir, '.tollgate', 'tollgate.db'), { readonly: true });
    try {
      return db.prepare('SELECT status, cost_pico, completion_tokens FROM usage_events').all() as Array<{ status: number; cost_pico: number; completion_tokens: number }>;
    } finally {
      db.close();
    }
  }

  it('a JSON answer is billed', async () => {
    const gw = await crashingGateway();
    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...auth(gw.key) },
      body: JSON.stringify(hello('chat', { max_tokens: 20 })),
    }).then(async (r) => ({ status: r.status, body: (await r.json()) as { usage: { completion_tokens: number } } }), () => undefined);
    expect(await gw.exited).toBe('SIGKILL');
    const rows = await ledgerAfterRestart(gw.dir);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ status: 200 });
    expect(rows[0]!.cost_pico).toBeGreaterThan(0);
    // When the client got the answer (it usually does: the bytes were handed to the socket), it is the one billed.
    if (res) expect(rows[0]!.completion_tokens).toBe(res.body.usage.completion_tokens);
  });

  it('a stream that sent [DONE] is billed', async () => {
    const gw = await crashingGateway();
    const raw = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...auth(gw.key) },
      body: JSON.stringify(hello('chat', { max_tokens: 20, stream: true })),
    }).then(
      (r) => r.text().catch(() => ''),
      () => '',
    );
    expect(await gw.exited).toBe('SIGKILL');
    const rows = await ledgerAfterRestart(gw.dir);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ status: 200 });
    expect(rows[0]!.completion_tokens).toBeGreaterThan(0);
    if (raw.includes('[DONE]')) expect(rows[0]!.cost_pico).toBeGreaterThan(0);
  });
});
