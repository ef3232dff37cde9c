import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { requestLogSchema } from '../config/request-log-schema.js';
import type { RequestContext } from '../pipeline/context.js';
import type { RequestLogEntry } from '../storage/types.js';
import { createLogger } from './logger.js';
import { RequestLogWriter, requestLogEntry } from './request-log.js';

const log = createLogger('silent');

function entry(i: number): RequestLogEntry {
  return {
    id: `r${i}`, requestId: `r${i}`, ts: i, tenantId: 't', keyId: 'k', userId: null, route: '/v1/chat/completions',
    requestedModel: 'm', servedModel: 'm', deployment: 'm@p', tier: null, status: 200, errorCode: null, cache: 'miss',
    latencyMs: 1, ttftMs: null, upstreamMs: 1, attempts: 1, promptTokens: 1, completionTokens: 1, costPico: 1,
    stream: false, traceId: null, jobId: null, prompt: null, answer: null,
  };
}

/** A store whose writes hang until released (or fail while `down`). */
function stalledStore() {
  const written: RequestLogEntry[] = [];
  let release: (() => void) | undefined;
  let stalled = true;
  let down = false;
  const store = {
    calls: 0,
    async append(rows: RequestLogEntry[]) {
      store.calls++;
      if (down) throw new Error('connection refused');
      if (stalled) await new Promise<void>((r) => (release = r));
      written.push(...rows);
      return rows.length;
    },
    async prune() {
      return 0;
    },
  };
  return {
    store,
    written,
    unstall() {
      stalled = false;
      release?.();
    },
    setDown(v: boolean) {
      down = v;
    },
  };
}

const dropped = async (registry: Registry, reason: string) =>
  (await registry.getSingleMetric('tollgate_request_log_dropped_total')!.get()).values.find((v) => v.labels['reason'] === reason)?.value ?? 0;

describe('RequestLogWriter', () => {
  it('under a burst with a stalled store, keeps at most maxPending rows, drops the oldest and counts them', async () => {
    const s = stalledStore();
    const registry = new Registry();
    const config = requestLogSchema.parse({ maxPending: 100, batchSize: 10, flushMs: 60_000 });
    const writer = new RequestLogWriter({ store: s.store, config, log, registry });
    for (let i = 0; i < 1_000; i++) writer.push(entry(i));
    // One batch (r0..r9) went to the store and hangs there; the queue holds the newest 100.
    expect(s.store.calls).toBe(1);
    expect(writer.pending).toBe(100);
    expect(await dropped(registry, 'full')).toBe(1_000 - 10 - 100);
    s.unstall();
    await writer.close();
    const ids = s.written.map((e) => e.id);
    expect(ids.slice(0, 10)).toEqual(Array.from({ length: 10 }, (_, i) => `r${i}`));
    expect(ids.slice(10)).toEqual(Array.from({ length: 100 }, (_, i) => `r${900 + i}`)); // the newest survived, in order
    expect(await dropped(registry, 'closed')).toBe(0);
  });

  it('keeps rows through a store outage within the bound, then writes them when it is back', async () => {
    const s = stalledStore();
    s.unstall();
    s.setDown(true);
    let now = 0;
    const registry = new Registry();
    const config = requestLogSchema.parse({ maxPending: 50, batchSize: 20, flushMs: 100 });
    const writer = new RequestLogWriter({ store: s.store, config, log, registry, now: () => now });
    for (let i = 0; i < 30; i++) writer.push(entry(i));
    await writer.flush(); // fails: the batch goes back to the head of the queue
    expect(writer.pending).toBe(30);
    for (let i = 30; i < 80; i++) writer.push(entry(i));
    expect(writer.pending).toBe(50);
    expect(await dropped(registry, 'full')).toBe(30);
    s.setDown(false);
    now += 1_000;
    await writer.flush();
    expect(writer.pending).toBe(0);
    expect(s.written.map((e) => e.id)).toEqual(Array.from({ length: 50 }, (_, i) => `r${30 + i}`));
    await writer.close();
  });

  it('flushes on close; what cannot be written then is counted as dropped', async () => {
    const s = stalledStore();
    s.unstall();
    const registry = new Registry();
    const writer = new RequestLogWriter({ store: s.store, config: requestLogSchema.parse({ batchSize: 3, flushMs: 60_000 }), log, registry });
    for (let i = 0; i < 7; i++) writer.push(entry(i));
    await writer.close();
    expect(s.written).toHaveLength(7);

    const t = stalledStore();
    t.setDown(true);
    const failingRegistry = new Registry();
    const failing = new RequestLogWriter({ store: t.store, config: requestLogSchema.parse({ flushMs: 60_000 }), log, registry: failingRegistry });
    for (let i = 0; i < 4; i++) failing.push(entry(i));
    await failing.close();
    expect(failing.pending).toBe(0);
    expect(await dropped(failingRegistry, 'closed')).toBe(4);
  });

  it('stops taking rows once closed', async () => {
    const s = stalledStore();
    s.unstall();
    const writer = new RequestLogWriter({ store: s.store, config: requestLogSchema.parse({}), log });
    await writer.close();
    writer.observe(fakeCtx(), { status: 200, latencyMs: 1 });
    expect(writer.pending).toBe(0);
  });
});

function fakeCtx(over: Partial<RequestContext> = {}): RequestContext {
  return {
    id: 'req_1',
    eventId: 'req_1',
    operation: 'chat',
    route: '/v1/chat/completions',
    startedAt: 0,
    receivedAt: 1_700_000_000_000,
    headers: {},
    body: { model: 'sim-small', messages: [{ role: 'user', content: 'my mail is a@b.io' }], stream: true },
    sink: undefined as never,
    log,
    attempts: [
      { deployment: 'x@p', outcome: 'http_500', durationMs: 10.04 },
      { deployment: 'y@p', outcome: 'ok', durationMs: 20.02 },
    ],
    extraHeaders: {},
    ...over,
  } as RequestContext;
}

describe('requestLogEntry', () => {
  it('builds the row from the context: upstream time is the sum of the attempts; no text unless asked', () => {
    const e = requestLogEntry(fakeCtx({ answerText: 'call me at +1 555 123 4567', traceId: 'abc' }), { status: 200, latencyMs: 42.06 });
    expect(e).toMatchObject({
      id: 'req_1', ts: 1_700_000_000_000, tenantId: null, route: '/v1/chat/completions', requestedModel: 'sim-small',
      status: 200, cache: 'none', latencyMs: 42.1, upstreamMs: 30.1, attempts: 2, stream: true, traceId: 'abc', jobId: null,
      prompt: null, answer: null,
    });
    const withText = requestLogEntry(fakeCtx({ answerText: 'call me at +1 555 123 4567' }), { status: 200, latencyMs: 1 }, { maxTextChars: 100 });
    expect(withText.prompt).toBe('user: my mail is [email]');
    expect(withText.answer).toBe('call me at [phone]');
  });

  it('names the job of a job run', () => {
    expect(requestLogEntry(fakeCtx({ id: 'job_9', route: '/v1/jobs' }), { status: 200, latencyMs: 1 }).jobId).toBe('job_9');
  });
});
