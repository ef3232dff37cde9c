/**
 * Fair queueing of async jobs: a tenant with 1,000 queued jobs does not delay another tenant's
 * single job by more than one worker slot (the claim order is priority, then the tenant with the
 * fewest running jobs, then FIFO: src/jobs/types.ts), and a premium key's job goes before a
 * standard one queued earlier.
 *
 * The order is shown without timing anything: upstream calls scripted to hang hold the worker's
 * slots, a test frees one slot at a time (by cancelling the job holding it), and the job states are
 * read from the gateway's SQLite file (a read-only connection) to see which job took it.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { SimServer } from '../../src/providers/simulated/server.js';
import { type TestGateway, auth, httpSimConfig, postJson, startGateway, startSim } from '../helpers/gateway.js';

const CONCURRENCY = 4;
const FLOOD = 1_000;

const question = (content: string) => ({ model: 'fixed', messages: [{ role: 'user', content }] });
const hang = (n = 1) => Array.from({ length: n }, () => ({ kind: 'hang' as const }));
const waitUntil = (check: () => void | Promise<void>) => vi.waitFor(check, { timeout: 10_000, interval: 5 });

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
  const runningA = () => db.prepare(`SELECT id FROM jobs WHERE tenant_id = ? AND status = 'running' ORDER BY started_at, id`).pluck().all(tenantA) as string[];

  async function submit(key: string, content: string): Promise<string> {
    const res = await postJson(`${gw.url}/v1/jobs`, { body: question(content) }, auth(key));
    expect(res.status).toBe(202);
    return res.body.id as string;
  }

  /** Cancels a running job of tenant A: its hanging upstream call is dropped and its slot frees. */
  async function freeSlotOf(id: string): Promise<void> {
    const del = await fetch(`${gw.url}/v1/jobs/${id}`, { method: 'DELETE', headers: auth(keyA) });
    expect(del.status).toBe(200);
  }

  beforeAll(async () => {
    sim = await startSim({
      'sim-fixed': { type: 'chat', ttftMs: { median: 0, p95: 0 }, tokensPerSecond: 0, outputTokens: { min: 8, max: 8 }, dimensions: 8 },
    });
    const dir = mkdtempSync(join(tmpdir(), 'tg-jobs-fair-'));
    gw = await startGateway({
      ...httpSimConfig({ sim }, { fixed: { deployments: [{ provider: 'sim', model: 'sim-fixed' }] } }),
      storage: { kind: 'embedded', dir },
      jobs: { concurrency: CONCURRENCY, pollMs: 50 },
      // The calls still hanging at the end are handed back at once.
      server: { shutdownGraceMs: 100 },
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

    // Tenant A's flood: 1,000 jobs, in parallel chunks. The first four runs hang upstream and hold
    // every slot, so the rest stays queued.
    sim.engine.script(hang(CONCURRENCY));
    for (let i = 0; i < FLOOD; i += 100) {
      await Promise.all(Array.from({ length: 100 }, (_, j) => submit(keyA, `Flood job ${i + j} of tenant A.`)));
    }
    await waitUntil(() => {
      expect(sim.engine.stats().inFlight).toBe(CONCURRENCY);
      expect([countA('running'), countA('queued')]).toEqual([CONCURRENCY, FLOOD - CONCURRENCY]);
    });
  }, 30_000);

  afterAll(async () => {
    db?.close();
    await gw?.close();
    await sim?.close();
  });

  it("delays another tenant's single job by at most one worker slot", async () => {
    const hung = runningA();
    expect(hung).toHaveLength(CONCURRENCY);
    const queuedAhead = countA('queued');

    const b = await submit(keyB, 'The single job of tenant B.');
    expect(row(b).status).toBe('queued'); // every slot is held
    sim.engine.script(hang()); // the run that takes the freed slot holds it in turn: nothing else moves

    // One slot frees: B's job takes it, ahead of the 996 jobs A queued before it.
    await freeSlotOf(hung[0]!);
    await waitUntil(() => {
      expect(row(b).status).toBe('running');
      expect(sim.engine.scriptedLeft).toBe(0); // its call is upstream, holding the slot
    });
    expect(countA('running')).toBe(CONCURRENCY - 1);
    expect(countA('queued')).toBe(queuedAhead); // no A job took B's place
  });

  it("starts a premium key's job, submitted behind the flood, before a standard job queued before it", async () => {
    expect(countA('queued')).toBeGreaterThan(100); // still behind A's flood
    // Every slot is held: three of A's hanging calls and B's job from the test above.
    const hung = runningA();
    expect(hung).toHaveLength(CONCURRENCY - 1);

    const standard = await submit(keyB, 'A standard job of tenant B, queued first.');
    const queuedAt = row(standard).created_at;
    await waitUntil(() => expect(Date.now()).toBeGreaterThan(queuedAt)); // the premium one is queued strictly later
    const premium = await submit(premiumKeyA, 'A premium job of tenant A, queued second.');
    expect(row(standard).status).toBe('queued');
    expect(row(premium).status).toBe('queued');

    // Free one slot: the premium job takes it (and holds it), the standard one still waits.
    sim.engine.script(hang());
    await freeSlotOf(hung[0]!);
    await waitUntil(() => {
      expect(row(premium).status).toBe('running');
      expect(sim.engine.scriptedLeft).toBe(0);
    });
    expect(row(standard).status).toBe('queued');

    // Free another: now the standard one (its tenant has fewer jobs running than A) runs, and answers.
    const premiumStarted = row(premium).started_at!;
    await waitUntil(() => expect(Date.now()).toBeGreaterThan(premiumStarted));
    await freeSlotOf(hung[1]!);
    await waitUntil(() => expect(row(standard).status).toBe('succeeded'));

    const s = row(standard);
    const p = row(premium);
    expect(p.priority).toBeLessThan(s.priority);
    expect(s.created_at).toBeLessThan(p.created_at);
    expect(p.started_at!).toBeLessThan(s.started_at!);
  });
});
