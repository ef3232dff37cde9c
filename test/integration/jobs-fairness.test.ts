/**
 * Fair queueing of async jobs: a tenant with 1,000 queued jobs does not delay another tenant's
 * single job by more than one worker slot (the claim order is priority, then the tenant with the
 * fewest running jobs, then FIFO: src/jobs/types.ts), and a premium key's job goes before a
 * standard one queued earlier.
 *
 * Timings are read from the job rows (epoch ms, the gateway's clock) through a read-only
 * connection to the gateway's SQLite file; the API's job object has them in whole seconds.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimServer } from '../../src/providers/simulated/server.js';
import { type TestGateway, auth, httpSimConfig, postJson, startGateway, startSim } from '../helpers/gateway.js';

const CONCURRENCY = 4;
const FLOOD = 1_000;
/** Every answer takes this long (time to first token, median = p95; the rest is instant). */
const ANSWER_MS = 50;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const question = (content: string) => ({ model: 'fixed', messages: [{ role: 'user', content }] });

interface Row {
  id: string;
  tenant_id: string;
  status: string;
  priority: number;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
}

describe('job queue fairness between tenants', () => {
  let sim: SimServer;
  let gw: TestGateway;
  let db: Database.Database;
  let tenantA: string;
  let keyA: string;
  let keyB: string;
  let premiumKeyA: string;

  const row = (id: string) => db.prepare('SELECT id, tenant_id, status, priority, created_at, started_at, finished_at FROM jobs WHERE id = ?').get(id) as Row;
  const countA = (status: string) => db.prepare('SELECT count(*) FROM jobs WHERE tenant_id = ? AND status = ?').pluck().get(tenantA, status) as number;

  async function submit(key: string, content: string): Promise<{ id: string; at: number }> {
    const at = performance.now();
    const res = await postJson(`${gw.url}/v1/jobs`, { body: question(content) }, auth(key));
    expect(res.status).toBe(202);
    return { id: res.body.id as string, at };
  }

  /** Polls GET /v1/jobs/:id every 5 ms until it left `queued`; the time it was first seen so (performance.now()). */
  async function seenStarted(key: string, id: string, timeoutMs = 5_000): Promise<number> {
    const until = performance.now() + timeoutMs;
    for (;;) {
      const job = await fetch(`${gw.url}/v1/jobs/${id}`, { headers: auth(key) }).then((r) => r.json());
      if (job.status !== 'queued') return performance.now();
      if (performance.now() > until) throw new Error(`job ${id} still queued after ${timeoutMs} ms`);
      await sleep(5);
    }
  }

  async function until(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (!check()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await sleep(10);
    }
  }

  beforeAll(async () => {
    sim = await startSim({
      'sim-fixed': { type: 'chat', ttftMs: { median: ANSWER_MS, p95: ANSWER_MS }, tokensPerSecond: 0, outputTokens: { min: 8, max: 8 }, dimensions: 8 },
    });
    const dir = mkdtempSync(join(tmpdir(), 'tg-jobs-fair-'));
    gw = await startGateway({
      ...httpSimConfig({ sim }, { fixed: { deployments: [{ provider: 'sim', model: 'sim-fixed' }] } }),
      storage: { kind: 'embedded', dir },
      jobs: { concurrency: CONCURRENCY, pollMs: 50 },
    });
    db = new Database(join(dir, 'tollgate.db'), { readonly: true });
    tenantA = gw.tenantId;
    keyA = gw.apiKey;
    const b = await postJson(`${gw.url}/admin/v1/tenants`, { name: 'tenant-b' }, auth(gw.adminKey));
    expect(b.status).toBe(201);
    const kb = await postJson(`${gw.url}/admin/v1/keys`, { tenant_id: b.body.id }, auth(gw.adminKey));
    expect(kb.status).toBe(201);
    keyB = kb.body.key;
    const kp = await postJson(`${gw.url}/admin/v1/keys`, { tenant_id: tenantA, tier: 'premium' }, auth(gw.adminKey));
    expect(kp.status).toBe(201);
    expect(kp.body.tier).toBe('premium');
    premiumKeyA = kp.body.key;

    // Tenant A's flood: 1,000 jobs, in parallel chunks.
    for (let i = 0; i < FLOOD; i += 100) {
      await Promise.all(Array.from({ length: 100 }, (_, j) => submit(keyA, `Flood job ${i + j} of tenant A.`)));
    }
  }, 30_000);

  afterAll(async () => {
    db?.close();
    await gw?.close();
    await sim?.close();
  });

  it("delays another tenant's single job by at most one worker slot", async () => {
    await until('A running on every slot with a deep queue', () => countA('running') === CONCURRENCY && countA('queued') >= 800);
    const queuedAhead = countA('queued');

    const b = await submit(keyB, 'The single job of tenant B.');
    const seen = await seenStarted(keyB, b.id);
    await until("B's job to finish", () => row(b.id).status === 'succeeded');
    const jb = row(b.id);
    const waitMs = jb.started_at! - jb.created_at;
    const durationMs = jb.finished_at! - jb.started_at!;
    // A's jobs that started after B's was queued: before it, and in the same claim (same instant).
    const startedA = (from: number, to: number) =>
      db.prepare('SELECT count(*) FROM jobs WHERE tenant_id = ? AND started_at > ? AND started_at < ?').pluck().get(tenantA, from, to) as number;
    const before = startedA(jb.created_at, jb.started_at!);
    const withIt = startedA(jb.started_at! - 1, jb.started_at! + 1);
    const fifoMs = ((queuedAhead + CONCURRENCY) * durationMs) / CONCURRENCY;
    console.log(
      `[jobs-fairness] A queued ahead: ${queuedAhead}, running: ${CONCURRENCY}; B's job waited ${waitMs} ms (created -> started, store) ` +
        `and was seen running by 5 ms polling ${Math.round(seen - b.at)} ms after its submit began; the job took ${durationMs} ms to run; ` +
        `A jobs started meanwhile: ${before} before it, ${withIt} in the same claim; FIFO would have made it wait ~${Math.round(fifoMs)} ms`,
    );

    expect(jb.status).toBe('succeeded');
    // One worker slot freeing: at most about one job's duration (two, with slack for the claim).
    expect(waitMs).toBeLessThan(2 * durationMs + 25);
    expect(waitMs * 50).toBeLessThan(fifoMs);
    // No A job took B's place: at most one per slot that freed before or with B's claim.
    expect(before + withIt).toBeLessThanOrEqual(CONCURRENCY);
  });

  it("starts a premium key's job, submitted behind the flood, before a standard job queued before it", async () => {
    expect(countA('queued')).toBeGreaterThan(100); // still behind A's flood
    // Hold every slot: the next 4 upstream calls hang (until their jobs are cancelled), so both
    // jobs below are queued before any slot frees, and slots then free one at a time.
    sim.engine.script(Array.from({ length: CONCURRENCY }, () => ({ kind: 'hang' as const })));
    const held = () => db.prepare(`SELECT id FROM jobs WHERE status = 'running' AND started_at < ?`).pluck().all(Date.now() - 5 * ANSWER_MS) as string[];
    await until('every slot held by a hanging call', () => sim.engine.scriptedLeft === 0 && held().length === CONCURRENCY);
    const hung = held();

    const standard = await submit(keyB, 'A standard job of tenant B, queued first.');
    await sleep(20);
    const premium = await submit(premiumKeyA, 'A premium job of tenant A, queued second.');
    expect(row(standard.id).status).toBe('queued');
    expect(row(premium.id).status).toBe('queued');

    // Free one slot.
    const del = await fetch(`${gw.url}/v1/jobs/${hung[0]}`, { method: 'DELETE', headers: auth(keyA) });
    expect(del.status).toBe(200);
    await until('both jobs to start', () => row(standard.id).started_at !== null && row(premium.id).started_at !== null);
    const s = row(standard.id);
    const p = row(premium.id);
    console.log(
      `[jobs-fairness] premium (queue priority ${p.priority}) submitted ${p.created_at - s.created_at} ms after the standard job (priority ${s.priority}); ` +
        `premium started ${p.started_at! - p.created_at} ms after its submit, the standard one ${s.started_at! - p.started_at!} ms after the premium`,
    );
    expect(p.priority).toBeLessThan(s.priority);
    expect(s.created_at).toBeLessThan(p.created_at);
    expect(p.started_at!).toBeLessThan(s.started_at!);

    // End fast: free the other held slots; closing the gateway leaves the rest of the flood queued.
    for (const id of hung.slice(1)) await fetch(`${gw.url}/v1/jobs/${id}`, { method: 'DELETE', headers: auth(keyA) });
  });
});
