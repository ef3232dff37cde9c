import { mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../observability/logger.js';
import type { Ledger, UsageEvent } from '../storage/types.js';
import { LedgerWriter } from './ledger-writer.js';

/** A Ledger that keeps events by request id, and can be told to fail. */
class FakeLedger implements Ledger {
  readonly events = new Map<string, UsageEvent>();
  calls = 0;
  failing = false;
  async append(events: UsageEvent[]): Promise<number> {
    this.calls++;
    if (this.failing) throw new Error('database unavailable');
    let added = 0;
    for (const e of events) if (!this.events.has(e.requestId)) (this.events.set(e.requestId, e), added++);
    return added;
  }
  async aggregate() {
    return [];
  }
  async spent() {
    return 0;
  }
  async get(id: string) {
    return this.events.get(id) ?? null;
  }
  async close() {}
}

const log = createLogger('silent');
const event = (i: number): UsageEvent => ({
  requestId: `req_${i}`,
  ts: 1_700_000_000_000 + i,
  tenantId: 't',
  keyId: 'k',
  userId: '',
  route: '/v1/chat/completions',
  requestedModel: 'm',
  servedModel: 'm',
  deployment: 'm@p',
  promptTokens: 10,
  completionTokens: 5,
  cachedTokens: 0,
  costPico: 1234,
  savedPico: 0,
  latencyMs: 3,
  ttftMs: null,
  cache: 'none',
  status: 200,
  attempts: 1,
  usageReported: true,
});

describe('LedgerWriter', () => {
  it('batches events into few ledger writes and removes the spool once written', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tg-spool-'));
    const ledger = new FakeLedger();
    const w = new LedgerWriter({ ledger, spoolDir: dir, log, flushIntervalMs: 10_000, maxBatch: 100 });
    await w.start();
    for (let i = 0; i < 250; i++) w.record(event(i));
    await w.flush();
    expect(ledger.events.size).toBe(250);
    expect(ledger.calls).toBeLessThanOrEqual(4);
    expect(w.pending).toBe(0);
    await w.close();
    expect(readdirSync(join(dir, String(process.pid)))).toEqual(['owner']);
  });

  it('keeps events on disk while the ledger fails, and writes them once it recovers', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tg-spool-'));
    const ledger = new FakeLedger();
    ledger.failing = true;
    const w = new LedgerWriter({ ledger, spoolDir: dir, log, flushIntervalMs: 5, maxRetryDelayMs: 20 });
    await w.start();
    for (let i = 0; i < 10; i++) w.record(event(i));
    await w.flush();
    expect(w.pending).toBe(10);
    expect(readdirSync(dir).length).toBeGreaterThan(0);
    ledger.failing = false;
    await expect.poll(() => ledger.events.size, { timeout: 2_000 }).toBe(10);
    expect(w.pending).toBe(0);
    await w.close();
  });

  it('replays what a crashed process left, exactly once, ignoring a torn last line', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tg-spool-'));
    const lines = [event(1), event(2), event(3)].map((e) => JSON.stringify(e)).join('\n');
    // a folder left by a process that died (pid 999999 does not exist)
    mkdirSync(join(dir, '999999'));
    writeFileSync(join(dir, '999999', 'owner'), '999999');
    writeFileSync(join(dir, '999999', 'spool-7.jsonl'), `${lines}\n{"requestId":"req_4","ts":`);
    const ledger = new FakeLedger();
    ledger.events.set('req_1', event(1)); // written before the crash, spool not yet deleted
    const w = new LedgerWriter({ ledger, spoolDir: dir, log });
    expect(await w.start()).toBe(3);
    expect([...ledger.events.keys()].sort()).toEqual(['req_1', 'req_2', 'req_3']);
    expect(readdirSync(dir)).toEqual([String(process.pid)]); // the dead process's folder was adopted and removed
    await w.close();
  });

  it("does not touch the spool of another live process", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tg-spool-'));
    const live = String(process.ppid); // a process that is alive
    mkdirSync(join(dir, live));
    writeFileSync(join(dir, live, 'owner'), live);
    writeFileSync(join(dir, live, 'spool-0.jsonl'), `${JSON.stringify(event(1))}\n`);
    const ledger = new FakeLedger();
    const w = new LedgerWriter({ ledger, spoolDir: dir, log });
    expect(await w.start()).toBe(0);
    expect(readdirSync(join(dir, live))).toContain('spool-0.jsonl');
    await w.close();
  });

  it('leaves unwritten events on disk at close, for the next start', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tg-spool-'));
    const ledger = new FakeLedger();
    ledger.failing = true;
    const w = new LedgerWriter({ ledger, spoolDir: dir, log, flushIntervalMs: 10_000 });
    await w.start();
    w.record(event(1));
    await w.close();
    ledger.failing = false;
    const again = new LedgerWriter({ ledger, spoolDir: dir, log });
    expect(await again.start()).toBe(1);
    expect(ledger.events.has('req_1')).toBe(true);
    await again.close();
  });
});
