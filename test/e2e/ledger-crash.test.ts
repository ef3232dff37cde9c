/**
 * Ledger totals equal the usage the simulator reported, exactly, after a run with retries,
 * fallbacks, streams, client disconnects and a SIGKILL of the gateway in the middle (with the
 * events of the first half still only in the local spool when it dies).
 */
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimServer } from '../../src/providers/simulated/server.js';
import { startCli } from '../helpers/cli.js';
import { FAST_MODELS, auth, hello, postJson, postStream, startSim } from '../helpers/gateway.js';

describe('ledger after a crash', () => {
  let sim: SimServer;
  /** Serves the slow streams the clients walk away from; no faults, so every one of them starts. */
  let calm: SimServer;
  let dir: string;

  beforeAll(async () => {
    sim = await startSim(FAST_MODELS);
    calm = await startSim({
      // A minute of answer: every client below has gone long before its end.
      slow: { type: 'chat', ttftMs: { median: 0, p95: 0 }, tokensPerSecond: 10, outputTokens: { min: 600, max: 600 }, dimensions: 8 },
    });
    dir = mkdtempSync(join(tmpdir(), 'tg-crash-'));
    writeFileSync(
      join(dir, 'tollgate.yaml'),
      `server: { port: 0 }
metering: { ledgerFlushMs: 600000 }
providers:
  primary: { kind: openai-compatible, baseUrl: "${sim.url}" }
  backup: { kind: openai-compatible, baseUrl: "${sim.url}" }
  calm: { kind: openai-compatible, baseUrl: "${calm.url}" }
models:
  chat:
    deployments: [{ provider: primary, model: sim-small }, { provider: backup, model: sim-large }]
    price: { input: 1, output: 2 }
  slow:
    deployments: [{ provider: calm, model: slow }]
resilience: { retry: { maxRetries: 1, baseDelayMs: 1, maxDelayMs: 5 } }
`,
    );
  });
  afterAll(async () => {
    await sim.close();
    await calm.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function traffic(url: string, key: string, n: number): Promise<void> {
    const jobs: Promise<unknown>[] = [];
    for (let i = 0; i < n; i++) {
      const body = hello('chat', { seed: i, max_tokens: 20 + (i % 7) });
      if (i % 3 === 0) jobs.push(postStream(`${url}/v1/chat/completions`, { ...body, stream: true }, auth(key)));
      else if (i % 3 === 1) jobs.push(postStream(`${url}/v1/chat/completions`, { ...body, stream: true, stream_options: { include_usage: true } }, auth(key)));
      else jobs.push(postJson(`${url}/v1/chat/completions`, body, auth(key)));
    }
    // clients that go away mid-stream, once some text has reached them
    for (let i = 0; i < 2; i++) {
      jobs.push(
        (async () => {
          const ac = new AbortController();
          const res = await fetch(`${url}/v1/chat/completions`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', ...auth(key) },
            body: JSON.stringify(hello('slow', { stream: true })),
            signal: ac.signal,
          });
          const reader = res.body!.getReader();
          const decoder = new TextDecoder();
          let received = '';
          while (!/"content":"[^"]/.test(received)) {
            const { value, done } = await reader.read();
            if (done) throw new Error(`the slow stream ended before the client left: ${received}`);
            received += decoder.decode(value, { stream: true });
          }
          ac.abort();
        })(),
      );
    }
    await Promise.all(jobs);
  }

  /** Usage events on local disk (the spool), not yet in the ledger. */
  function spooled(): number {
    const root = join(dir, '.tollgate', 'spool');
    let lines = 0;
    for (const pid of existsSync(root) ? readdirSync(root) : []) {
      for (const f of readdirSync(join(root, pid))) {
        if (f.endsWith('.jsonl')) lines += readFileSync(join(root, pid, f), 'utf8').split('\n').filter(Boolean).length;
      }
    }
    return lines;
  }

  it('counts every answered request exactly once, through retries, fallbacks, disconnects and a SIGKILL', async () => {
    sim.engine.setFaults({ errorRate: { '500': 0.15, '503': 0.05 } });
    const first = await startCli([], dir);
    const key = /demo API key \(tenant "[^"]+"\): (\S+)/.exec(first.output())![1]!;
    await traffic(first.url, key, 45);
    // Every answered request's event is on disk (settle runs just after each response)...
    await expect.poll(spooled, { timeout: 10_000, interval: 50 }).toBe(45 + 2);
    // ...and only there when the process dies.
    first.child.kill('SIGKILL');
    await new Promise((r) => first.child.once('exit', r));

    const second = await startCli([], dir);
    await traffic(second.url, key, 30);
    expect(await second.stop()).toBe(0); // SIGTERM: the last batch is flushed

    const reported = sim.engine.stats().reportedUsage; // (the calm simulator reported none: every stream it served was abandoned)
    expect(calm.engine.stats().reportedUsage.answers).toBe(0);
    const db = new Database(join(dir, '.tollgate', 'tollgate.db'), { readonly: true });
    const fromUpstream = db
      .prepare(`SELECT count(*) n, sum(prompt_tokens) p, sum(completion_tokens) c FROM usage_events WHERE usage_reported = 1 AND cache IN ('miss', 'bypass', 'none')`)
      .get() as { n: number; p: number; c: number };
    // Answers served by the cache (the second run repeats the first one's deterministic requests,
    // and the semantic cache survives the restart) cost nothing and are not upstream usage.
    const served = db.prepare(`SELECT count(*) n, sum(cost_pico) cost FROM usage_events WHERE cache IN ('hit', 'semantic', 'stale', 'coalesced')`).get() as {
      n: number;
      cost: number | null;
    };
    expect(served.cost ?? 0).toBe(0);
    const disconnected = db.prepare('SELECT count(*) n, sum(completion_tokens) c, max(usage_reported) r FROM usage_events WHERE status = 499').get() as {
      n: number;
      c: number;
      r: number;
    };
    const total = db.prepare('SELECT count(*) n FROM usage_events').get() as { n: number };
    db.close();

    expect(sim.engine.stats().outcomes.error).toBeGreaterThan(0); // retries and fallbacks happened
    expect(fromUpstream.n).toBe(reported.answers);
    expect(fromUpstream.p).toBe(reported.promptTokens);
    expect(fromUpstream.c).toBe(reported.completionTokens);
    // the disconnected streams: billed for what was streamed, counted locally
    expect(disconnected).toMatchObject({ n: 4, r: 0 });
    expect(disconnected.c).toBeGreaterThan(0);
    expect(total.n).toBe(75 + 4); // one event per request, none lost with the SIGKILL, none twice
  });
});
