/**
 * Behaviour every A/B experiment results source (`ExperimentResultsSource.raw`) and
 * `FeedbackStore` adapter must have. An adapter's test file calls
 * `runExperimentsContract(name, factory)`; `factory` returns an empty store each time, with
 * `insert`, which writes `usage_events` rows directly with SQL (experiment and variant included).
 *
 * Semantics pinned here:
 * - `raw` covers the events of one experiment with `from <= ts < to`, one entry per variant that
 *   has events, sorted by variant name; it adds up exactly: requests, errors (status >= 400),
 *   token and cost sums (also beyond 2^31), every latency and cost, the TTFT of every streamed
 *   event (ttft_ms not null).
 * - Feedback is joined by tenant and the request id the client saw: the event's own id, or the
 *   part of `<id>~<suffix>` before the last '~' (a client id may itself contain '~'). Feedback
 *   of another tenant, or on a shorter prefix ('a' for 'a~b~suffix'), does not count.
 * - `FeedbackStore.put` keeps the latest verdict per (tenant, request id): an older `at` is
 *   ignored, an equal or newer one replaces it.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ExperimentResultsSource, VariantRaw } from '../../src/routing/experiment-stats.js';
import type { FeedbackStore } from '../../src/routing/types.js';

/** A `usage_events` row, as the adapters' `insert` writes it. */
export interface EventRow {
  requestId: string;
  ts: number;
  tenantId: string;
  status: number;
  latencyMs: number;
  ttftMs: number | null;
  promptTokens: number;
  completionTokens: number;
  costPico: number;
  tier: string;
  experiment: string;
  variant: string;
}

export interface ExperimentsFixture {
  results: ExperimentResultsSource;
  feedback: FeedbackStore;
  /** Inserts rows into usage_events with plain SQL (other columns: any valid values). */
  insert(rows: EventRow[]): Promise<void>;
  close(): Promise<void>;
}

const T0 = Date.UTC(2025, 3, 1);
const FROM = T0;
const TO = T0 + 7 * 86_400_000;

let counter = 0;
function event(overrides: Partial<EventRow> = {}): EventRow {
  counter++;
  return {
    requestId: `req_${counter}`,
    ts: T0 + 1_000 + counter,
    tenantId: 'ten_a',
    status: 200,
    latencyMs: 100,
    ttftMs: null,
    promptTokens: 10,
    completionTokens: 20,
    costPico: 1_000,
    tier: '',
    experiment: 'exp1',
    variant: 'control',
    ...overrides,
  };
}

/** What `raw` must return for `rows` (already filtered to the experiment and range), feedback aside. */
function expected(rows: EventRow[]): Omit<VariantRaw, 'feedbackGood' | 'feedbackBad'>[] {
  const by = new Map<string, EventRow[]>();
  for (const r of rows) by.set(r.variant, [...(by.get(r.variant) ?? []), r]);
  return [...by.keys()].sort().map((variant) => {
    const rs = by.get(variant)!;
    return {
      variant,
      requests: rs.length,
      errors: rs.filter((r) => r.status >= 400).length,
      latencies: rs.map((r) => r.latencyMs).sort(numeric),
      ttfts: rs.flatMap((r) => (r.ttftMs === null ? [] : [r.ttftMs])).sort(numeric),
      promptTokens: rs.reduce((a, r) => a + r.promptTokens, 0),
      completionTokens: rs.reduce((a, r) => a + r.completionTokens, 0),
      costPico: rs.reduce((a, r) => a + r.costPico, 0),
      costs: rs.map((r) => r.costPico).sort(numeric),
    };
  });
}

const numeric = (a: number, b: number) => a - b;

/** `raw` with the per-event arrays sorted (their order is not part of the contract). */
async function rawSorted(results: ExperimentResultsSource, experiment: string, from = FROM, to = TO): Promise<VariantRaw[]> {
  const raws = await results.raw(experiment, from, to);
  return raws.map((r) => ({ ...r, latencies: [...r.latencies].sort(numeric), ttfts: [...r.ttfts].sort(numeric), costs: [...r.costs].sort(numeric) }));
}

export function runExperimentsContract(name: string, factory: () => Promise<ExperimentsFixture>): void {
  describe(`Experiment results contract: ${name}`, () => {
    let fx: ExperimentsFixture;

    beforeEach(async () => {
      fx = await factory();
    });

    afterEach(async () => {
      await fx.close();
    });

    it('returns nothing for an experiment without events', async () => {
      await fx.insert([event({ experiment: 'other' }), event({ experiment: '', variant: '' })]);
      expect(await fx.results.raw('exp1', FROM, TO)).toEqual([]);
      expect(await fx.results.raw('', FROM, TO)).toEqual([]);
    });

    it('adds up exactly to the events of the experiment in [from, to), per variant', async () => {
      const statuses = [200, 200, 201, 400, 429, 499, 500, 502, 503, 200];
      const inside: EventRow[] = [];
      for (let i = 0; i < 60; i++) {
        inside.push(
          event({
            variant: ['control', 'treatment', 'b-long'][i % 3]!,
            ts: FROM + i * 3_600_000,
            status: statuses[i % statuses.length]!,
            latencyMs: 50 + ((i * 37) % 400),
            ttftMs: i % 4 === 0 ? 5 + i : null,
            promptTokens: 1_000 + i * 13,
            completionTokens: i * 7,
            // Amounts whose sums pass 2^31 and 2^32 (PostgreSQL sums are numeric).
            costPico: 3_000_000_000 + i * 1_234_567,
            tier: i % 2 ? 'small' : 'large',
          }),
        );
      }
      inside.push(event({ variant: 'control', ts: FROM })); // the lower bound is inclusive
      inside.push(event({ variant: 'treatment', ts: TO - 1 }));
      const outside = [
        event({ variant: 'control', ts: FROM - 1 }),
        event({ variant: 'control', ts: TO }), // the upper bound is exclusive
        event({ variant: 'treatment', experiment: 'exp2' }),
        event({ variant: 'control', experiment: 'exp10' }),
        event({ experiment: '', variant: '' }),
      ];
      await fx.insert([...inside, ...outside]);

      const raws = await rawSorted(fx.results, 'exp1');
      expect(raws.map((r) => r.variant)).toEqual(['b-long', 'control', 'treatment']);
      expect(raws).toEqual(expected(inside).map((e) => ({ ...e, feedbackGood: 0, feedbackBad: 0 })));
      const total = raws.reduce((a, r) => a + r.requests, 0);
      expect(total).toBe(inside.length);
      expect(raws.reduce((a, r) => a + r.errors, 0)).toBe(inside.filter((r) => r.status >= 400).length);
      expect(raws.reduce((a, r) => a + r.costPico, 0)).toBe(inside.reduce((a, r) => a + r.costPico, 0));

      // Open ends count everything of the experiment.
      const all = await rawSorted(fx.results, 'exp1', -Infinity, Infinity);
      expect(all.reduce((a, r) => a + r.requests, 0)).toBe(inside.length + 2);
      expect(await rawSorted(fx.results, 'exp2')).toEqual(
        expected([outside[2]!]).map((e) => ({ ...e, feedbackGood: 0, feedbackBad: 0 })),
      );
    });

    it('joins feedback by tenant on the id the client saw, with and without a suffix', async () => {
      await fx.insert([
        event({ requestId: 'req-plain', variant: 'control' }),
        event({ requestId: 'client-1~a1b2c3d4e5f6', variant: 'control' }),
        event({ requestId: 'my~id~0123456789ab', variant: 'treatment' }),
        event({ requestId: 'req-t2', variant: 'treatment' }),
        event({ requestId: 'req-t3', variant: 'treatment' }),
        event({ requestId: 'req-none', variant: 'treatment' }),
        event({ requestId: 'req-b', variant: 'treatment', tenantId: 'ten_b' }),
        event({ requestId: 'req-old', variant: 'control', ts: FROM - 10 }),
        event({ requestId: 'req-other-exp', variant: 'control', experiment: 'exp2' }),
      ]);
      const put = (tenantId: string, requestId: string, good: boolean, at = T0) => fx.feedback.put({ tenantId, requestId, good, comment: '', at });
      await put('ten_a', 'req-plain', true);
      await put('ten_a', 'client-1', false); // the client's own id; the event is client-1~<suffix>
      await put('ten_a', 'my~id', true); // a client id containing '~'
      await put('ten_a', 'my', false); // a different request: not a prefix match of my~id~...
      await put('ten_a', 'req-t2', false);
      await put('ten_a', 'req-t3', false);
      await put('ten_b', 'req-plain', false); // another tenant's request of the same id
      await put('ten_a', 'req-b', true); // the event is ten_b's
      await put('ten_b', 'req-b', true);
      await put('ten_a', 'req-old', true); // out of range
      await put('ten_a', 'req-other-exp', true); // another experiment
      await put('ten_a', 'req-unknown', true); // no event

      const raws = await fx.results.raw('exp1', FROM, TO);
      expect(raws.map((r) => [r.variant, r.requests, r.feedbackGood, r.feedbackBad])).toEqual([
        ['control', 2, 1, 1],
        ['treatment', 5, 2, 2],
      ]);
    });

    it('keeps the latest verdict per request', async () => {
      await fx.insert([event({ requestId: 'req-v', variant: 'control' }), event({ requestId: 'req-w~00ff00ff00ff', variant: 'control' })]);
      const verdicts = async () => {
        const [raw] = await fx.results.raw('exp1', FROM, TO);
        return [raw!.feedbackGood, raw!.feedbackBad];
      };
      await fx.feedback.put({ tenantId: 'ten_a', requestId: 'req-v', good: true, comment: 'nice', at: T0 + 100 });
      expect(await verdicts()).toEqual([1, 0]);
      await fx.feedback.put({ tenantId: 'ten_a', requestId: 'req-v', good: false, comment: 'changed my mind', at: T0 + 200 });
      expect(await verdicts()).toEqual([0, 1]);
      await fx.feedback.put({ tenantId: 'ten_a', requestId: 'req-v', good: true, comment: 'late retry of the first', at: T0 + 150 });
      expect(await verdicts()).toEqual([0, 1]);
      await fx.feedback.put({ tenantId: 'ten_a', requestId: 'req-v', good: true, comment: 'same time: last write wins', at: T0 + 200 });
      expect(await verdicts()).toEqual([1, 0]);
      await fx.feedback.put({ tenantId: 'ten_a', requestId: 'req-w', good: false, comment: '', at: T0 });
      await fx.feedback.put({ tenantId: 'ten_a', requestId: 'req-w', good: false, comment: 'again', at: T0 + 1 });
      expect(await verdicts()).toEqual([1, 1]);
    });
  });
}
