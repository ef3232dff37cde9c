/**
 * Async jobs survive crashes: 500 jobs submitted to a CLI-started gateway, the process SIGKILLed
 * twice while they run (each time while a job's upstream call, the 100th and then the 250th, is
 * scripted to hang: work certainly in flight) and restarted on the same folder and config. Every job ends succeeded with its result; the webhook receiver's dedupe log
 * (by `webhook-id`) holds each job's result exactly once, every delivery correctly signed with the
 * tenant's secret (redeliveries after a crash are allowed: webhooks are at least once); the ledger
 * has exactly one usage event per job, keyed by the job id (a run cut short by a crash and run
 * again is not billed twice).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { SimServer } from '../../src/providers/simulated/server.js';
import { type RunningCli, bannerKeys, startCli } from '../helpers/cli.js';
import { auth, postJson, startSim } from '../helpers/gateway.js';
import { type WebhookReceiver, startWebhookReceiver } from '../helpers/webhook-receiver.js';

const JOBS = 500;
/** The upstream calls (counted from the first) that hang, and during which the process is killed. */
const KILL_AT = [100, 250] as const;
/** The master key of the tenants' webhook signing secrets (32 characters). */
const SIGNING_SECRET = 'tollgate-crash-test-signing-key!';

describe('async jobs through two SIGKILLs of the gateway', () => {
  let sim: SimServer;
  let receiver: WebhookReceiver | undefined;
  let dir: string;
  /** Every gateway process this file started (each is ended by its own handle). */
  const started: RunningCli[] = [];

  beforeAll(async () => {
    sim = await startSim({
      // ~20-50 ms per answer, so 500 jobs on 16 slots take a few seconds.
      'sim-jobs': { type: 'chat', ttftMs: { median: 30, p95: 50 }, tokensPerSecond: 0, outputTokens: { min: 8, max: 24 }, dimensions: 8 },
    });
    dir = mkdtempSync(join(tmpdir(), 'tg-jobs-crash-'));
    expect(SIGNING_SECRET).toHaveLength(32);
    writeFileSync(
      join(dir, 'tollgate.yaml'),
      `server: { port: 0 }
metering: { ledgerFlushMs: 250 }
providers:
  sim: { kind: openai-compatible, baseUrl: "${sim.url}" }
models:
  chat:
    deployments: [{ provider: sim, model: sim-jobs }]
    price: { input: 1, output: 2 }
jobs:
  concurrency: 16
  leaseMs: 1500
  pollMs: 100
  webhooks: { allowLoopback: true, signingSecret: "${SIGNING_SECRET}", baseDelayMs: 50, maxDelayMs: 500 }
`,
    );
  });

  afterAll(async () => {
    for (const cli of started) {
      if (cli.child.exitCode === null && cli.child.signalCode === null) {
        const exited = new Promise((r) => cli.child.once('exit', r));
        cli.child.kill('SIGKILL');
        await exited;
      }
    }
    await receiver?.close();
    await sim?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function start(): Promise<RunningCli> {
    const cli = await startCli([], dir);
    started.push(cli);
    return cli;
  }

  async function kill(cli: RunningCli): Promise<void> {
    const exited = new Promise((r) => cli.child.once('exit', r));
    cli.child.kill('SIGKILL');
    await exited;
  }

  /** Resolves once the receiver's dedupe log holds `n` results (the timeout only bounds a failure). */
  async function uniqueReaches(n: number, timeoutMs: number): Promise<void> {
    await vi.waitFor(
      () => {
        if (receiver!.unique.size < n) throw new Error(`webhook receiver: ${receiver!.unique.size} of ${n} unique results`);
      },
      { timeout: timeoutMs, interval: 2 },
    );
  }

  /** The upstream call number `call` (counted from the first) hangs; the ones before it answer. */
  function hangAtCall(call: number): void {
    const before = call - 1 - sim.engine.stats().total;
    expect(before).toBeGreaterThanOrEqual(0);
    sim.engine.script([...Array.from({ length: before }, () => ({ kind: 'ok' as const })), { kind: 'hang' as const }]);
  }

  it('completes all 500 jobs, delivers each result once to the dedupe log and bills each once', { timeout: 110_000 }, async () => {
    const t0 = Date.now();
    hangAtCall(KILL_AT[0]);
    let gw = await start();
    const { admin, demo } = bannerKeys(gw.output());
    const tenant = /demo API key \(tenant "([^"]+)"\)/.exec(gw.output())![1]!;
    const secret = await fetch(`${gw.url}/admin/v1/tenants/${tenant}/webhook-secret`, { headers: auth(admin) }).then((r) => r.json());
    expect(secret.secret).toMatch(/^whsec_[0-9a-f]{64}$/);
    receiver = await startWebhookReceiver({ secret: secret.secret });

    // 500 jobs, each a distinct prompt, in parallel chunks.
    const ids: string[] = [];
    for (let chunk = 0; chunk < JOBS; chunk += 50) {
      const answers = await Promise.all(
        Array.from({ length: 50 }, (_, j) =>
          postJson(
            `${gw.url}/v1/jobs`,
            {
              body: { model: 'chat', messages: [{ role: 'user', content: `Job ${chunk + j}: name three uses of the number ${chunk + j}.` }] },
              webhook_url: receiver!.url,
              metadata: { n: String(chunk + j) },
            },
            auth(demo),
          ),
        ),
      );
      for (const a of answers) {
        expect(a.status).toBe(202);
        ids.push(a.body.id as string);
      }
    }
    expect(new Set(ids).size).toBe(JOBS);
    const submittedAt = receiver.unique.size;

    // Two crashes while the jobs run and their webhooks go out: each while a run's upstream call hangs.
    const killPoints: Array<{ unique: number; deliveries: number; atMs: number; at: number }> = [];
    for (const i of KILL_AT.keys()) {
      await vi.waitFor(() => expect(sim.engine.stats().outcomes.hang).toBe(i + 1), { timeout: 30_000, interval: 2 });
      const at = Date.now();
      await kill(gw);
      killPoints.push({ unique: receiver.unique.size, deliveries: receiver.deliveries.length, atMs: at - t0, at });
      if (i + 1 < KILL_AT.length) hangAtCall(KILL_AT[i + 1]!);
      gw = await start();
    }
    await uniqueReaches(JOBS, 90_000);
    const doneAtMs = Date.now() - t0;
    // Deliveries a crash cut off after the receiver had them are redelivered once their outbox
    // lease passes (jobs.webhooks.timeoutMs + 5 s): wait until the outbox records every one.
    const watch = new Database(join(dir, '.tollgate', 'tollgate.db'), { readonly: true });
    try {
      const delivered = watch.prepare(`SELECT count(*) AS n FROM jobs WHERE webhook_state = 'delivered'`).pluck();
      await expect.poll(() => delivered.get(), { timeout: 40_000, interval: 100 }).toBe(JOBS);
    } finally {
      watch.close();
    }
    const drainedAtMs = Date.now() - t0;

    // Every job succeeded, with its result, as the API shows it.
    const jobs: any[] = [];
    for (let i = 0; i < ids.length; i += 50) {
      jobs.push(...(await Promise.all(ids.slice(i, i + 50).map((id) => fetch(`${gw.url}/v1/jobs/${id}`, { headers: auth(demo) }).then((r) => r.json())))));
    }
    for (const job of jobs) {
      expect(job).toMatchObject({ object: 'job', status: 'succeeded', error: null });
      expect(job.result.object).toBe('chat.completion');
      expect(job.result.choices[0].message.content.length).toBeGreaterThan(0);
    }

    // The dedupe log: exactly the 500 jobs' results, each once; every delivery correctly signed.
    const uniqueJobIds = [...receiver.unique.values()].map((d) => d.body.data.id as string);
    expect(new Set(uniqueJobIds)).toEqual(new Set(ids));
    expect(uniqueJobIds).toHaveLength(JOBS);
    for (const [webhookId, d] of receiver.unique) {
      expect(webhookId).toBe(`${d.body.data.id}:job.succeeded`);
      expect(d.event).toBe('job.succeeded');
      expect(d.body.id).toBe(webhookId);
      expect(d.body.data.status).toBe('succeeded');
      expect(d.body.data.result.object).toBe('chat.completion');
    }
    const deliveries = receiver.deliveries;
    expect(deliveries.every((d) => d.signatureValid)).toBe(true);
    expect(deliveries.every((d) => d.status === 200)).toBe(true);
    expect(deliveries.length).toBeGreaterThanOrEqual(JOBS);
    // A redelivery carries the same event: same job, same result.
    for (const d of deliveries) expect(d.rawBody).toBe(receiver.unique.get(d.webhookId)!.rawBody);

    // A graceful stop flushes the ledger; then read the store directly.
    expect(await gw.stop()).toBe(0);
    const db = new Database(join(dir, '.tollgate', 'tollgate.db'), { readonly: true });
    try {
      const idList = JSON.stringify(ids);
      const billed = db
        .prepare(`SELECT count(*) AS n, count(DISTINCT request_id) AS d FROM usage_events WHERE request_id IN (SELECT value FROM json_each(?))`)
        .get(idList) as { n: number; d: number };
      // No other event for any job (a run that is retried is billed as `<job id>~<attempt>`: none failed here).
      const extra = db.prepare(`SELECT count(*) AS n FROM usage_events WHERE request_id LIKE 'job\\_%' ESCAPE '\\' AND request_id NOT IN (SELECT value FROM json_each(?))`).get(idList) as {
        n: number;
      };
      const ok = db.prepare(`SELECT count(*) AS n FROM usage_events WHERE request_id IN (SELECT value FROM json_each(?)) AND status = 200 AND route = '/v1/jobs'`).get(idList) as {
        n: number;
      };
      const table = db
        .prepare(`SELECT status, count(*) AS n, sum(attempts) AS attempts, sum(webhook_state = 'delivered') AS delivered FROM jobs GROUP BY status`)
        .all() as Array<{ status: string; n: number; attempts: number; delivered: number }>;
      const allEvents = db.prepare('SELECT count(*) AS n FROM usage_events').get() as { n: number };

      const reruns = table.reduce((s, r) => s + r.attempts, 0) - JOBS;
      const redeliveries = deliveries.length - receiver.unique.size;
      console.log(
        `[jobs-crash] submitted ${JOBS} jobs (${submittedAt} results delivered by the end of submission); ` +
          `SIGKILL #1 at ${killPoints[0]!.unique} unique deliveries (${killPoints[0]!.atMs} ms), SIGKILL #2 at ${killPoints[1]!.unique} (${killPoints[1]!.atMs} ms); ` +
          `all ${JOBS} results in the dedupe log at ${doneAtMs} ms, every delivery recorded by the gateway at ${drainedAtMs} ms; deliveries ${deliveries.length} (redeliveries ${redeliveries}); ` +
          `jobs re-run (sum(attempts) - ${JOBS}) ${reruns}; ledger events for the jobs ${billed.n} (${allEvents.n} in all)`,
      );

      if (billed.n !== JOBS) {
        // Which jobs went unbilled, and when they ended relative to the kills (diagnostics).
        const missing = db
          .prepare(`SELECT id, attempts, finished_at FROM jobs WHERE id NOT IN (SELECT request_id FROM usage_events)`)
          .all() as Array<{ id: string; attempts: number; finished_at: number }>;
        for (const m of missing) {
          console.log(`[jobs-crash] unbilled ${m.id}: attempts ${m.attempts}, finished ${killPoints.map((k) => `${m.finished_at - k.at} ms`).join(' / ')} from kill #1 / #2`);
        }
      }
      expect(table).toEqual([{ status: 'succeeded', n: JOBS, attempts: JOBS + reruns, delivered: JOBS }]);
      expect(billed).toEqual({ n: JOBS, d: JOBS });
      expect(ok.n).toBe(JOBS);
      expect(extra.n).toBe(0);
      expect(allEvents.n).toBe(JOBS);
      // The crashes really hit work in flight: the job whose call hung at each kill ran again.
      expect(reruns).toBeGreaterThanOrEqual(KILL_AT.length);
    } finally {
      db.close();
    }
  });
});
