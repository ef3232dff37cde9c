import { describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/storage/sqlite/database.js';
import { FEEDBACK_SQL, SqliteExperimentResults } from '../../src/storage/sqlite/experiments.js';
import { SqliteFeedbackStore } from '../../src/storage/sqlite/feedback.js';
import { type EventRow, runExperimentsContract } from './experiments.contract.js';

const INSERT = `INSERT INTO usage_events (request_id, ts, tenant_id, key_id, user_id, route, requested_model, served_model,
    deployment, prompt_tokens, completion_tokens, cached_tokens, cost_pico, saved_pico, latency_ms, ttft_ms,
    cache, status, attempts, usage_reported, tier, experiment, variant)
  VALUES (@requestId, @ts, @tenantId, 'key_1', 'user_1', 'auto', 'auto', 'fast', 'fast@sim',
    @promptTokens, @completionTokens, 0, @costPico, 0, @latencyMs, @ttftMs,
    'miss', @status, 1, 1, @tier, @experiment, @variant)`;

runExperimentsContract('sqlite', async () => {
  const db = openDatabase(':memory:');
  const insert = db.prepare<[EventRow]>(INSERT);
  return {
    results: new SqliteExperimentResults(db),
    feedback: new SqliteFeedbackStore(db),
    insert: async (rows) => void db.transaction(() => rows.forEach((r) => insert.run(r)))(),
    close: async () => void db.close(),
  };
});

describe('SqliteExperimentResults query plan', () => {
  it('reads the experiment through its index and looks feedback up by primary key (never scans the feedback)', () => {
    const db = openDatabase(':memory:');
    const plan = (db.prepare(`EXPLAIN QUERY PLAN ${FEEDBACK_SQL}`).all({ experiment: 'e', from: 0, to: 1 }) as { detail: string }[])
      .map((r) => r.detail)
      .join('\n');
    expect(plan.match(/SEARCH u USING INDEX usage_events_by_experiment/g)).toHaveLength(2);
    expect(plan.match(/SEARCH f USING INDEX sqlite_autoindex_feedback_1 \(tenant_id=\? AND request_id=\?\)/g)).toHaveLength(2);
    expect(plan).not.toMatch(/SCAN (f|u)\b/);
    db.close();
  });
});
