/**
 * What writing the usage event before an answer's last byte costs (issue: no answer goes
 * unbilled): `LedgerWriter.record` appends each event to the spool with its own synchronous
 * write(2) on the request's turn, where it used to gather the events of one event-loop turn into
 * one write a turn later. Measured in process, on the real LedgerWriter, against a ledger that
 * accepts every batch at once (only the spool's cost is measured), and the former way (the same
 * JSON lines, one write per 32 events) on the same disk, in the same run; the core scenario
 * relates both to Tollgate's CPU per request.
 */
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LedgerWriter } from '../../src/metering/ledger-writer.js';
import { createLogger } from '../../src/observability/logger.js';
import type { UsageEvent } from '../../src/storage/types.js';
import { type LatencySummary, Samples, summarize } from '../lib/stats.js';

/** Events per timed batch. */
const BATCH = 200;
/** Events one write carried the former way (a burst of settles in one turn). */
const PER_WRITE = 32;

export interface SpoolWriteCost {
  /** µs per event: one synchronous write each (the current path), per-batch figures. */
  perEventUs: LatencySummary;
  /** µs per event: one write per PER_WRITE events (the former path). */
  batchedUs: LatencySummary;
  events: number;
  perWrite: number;
}

function event(i: number): UsageEvent {
  return {
    requestId: `bench-${process.pid}-${i}`,
    ts: Date.now(),
    tenantId: 'tenant-bench',
    keyId: 'key-bench-0001',
    userId: 'user-42',
    route: '/v1/chat/completions',
    requestedModel: 'chat',
    servedModel: 'sim-small',
    deployment: 'sim/sim-small',
    promptTokens: 28,
    completionTokens: 16,
    cachedTokens: 0,
    costPico: 124_000_000,
    savedPico: 0,
    latencyMs: 3,
    ttftMs: null,
    cache: 'miss',
    status: 200,
    attempts: 1,
    usageReported: true,
  };
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

/** Runs each way for `seconds` (alternating batches), after `warmupSeconds` of the same. */
export async function measureSpoolWrite(seconds: number, warmupSeconds: number): Promise<SpoolWriteCost> {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-bench-spool-'));
  const writer = new LedgerWriter({ ledger: { append: async () => undefined } as never, spoolDir: join(dir, 'spool'), log: createLogger('silent'), flushIntervalMs: 200 });
  await writer.start();
  const formerFd = openSync(join(dir, 'former.jsonl'), 'a', 0o600);
  const perEvent = new Samples();
  const batched = new Samples();
  let i = 0;
  let events = 0;
  try {
    const run = async (until: bigint, record: boolean): Promise<void> => {
      while (process.hrtime.bigint() < until) {
        let t0 = process.hrtime.bigint();
        for (let k = 0; k < BATCH; k++) writer.record(event(i++));
        let t1 = process.hrtime.bigint();
        if (record) perEvent.push(Number(t1 - t0) / 1000 / BATCH);
        await turn(); // the writer's flushes run, as between requests
        t0 = process.hrtime.bigint();
        for (let k = 0; k < BATCH; k += PER_WRITE) {
          let text = '';
          for (let j = 0; j < PER_WRITE; j++) text += `${JSON.stringify(event(i++))}\n`;
          writeSync(formerFd, text);
        }
        t1 = process.hrtime.bigint();
        if (record) {
          batched.push(Number(t1 - t0) / 1000 / BATCH);
          events += BATCH;
        }
        await turn();
      }
    };
    await run(process.hrtime.bigint() + BigInt(Math.round(warmupSeconds * 1e9)), false);
    await run(process.hrtime.bigint() + BigInt(Math.round(seconds * 1e9)), true);
  } finally {
    closeSync(formerFd);
    await writer.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return { perEventUs: summarize(perEvent.values()), batchedUs: summarize(batched.values()), events, perWrite: PER_WRITE };
}
