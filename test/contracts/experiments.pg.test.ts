import { describe } from 'vitest';
import { PostgresExperimentResults } from '../../src/storage/postgres/experiments.js';
import { PostgresFeedbackStore } from '../../src/storage/postgres/feedback.js';
import { requireService } from '../helpers/services.js';
import { usePgSchema } from '../helpers/pg.js';
import { type EventRow, runExperimentsContract } from './experiments.contract.js';

const pg = await requireService('postgres');

describe.skipIf(!pg)('PostgresExperimentResults and PostgresFeedbackStore', () => {
  const db = usePgSchema(pg!);

  runExperimentsContract('postgres', async () => {
    const sql = db.open();
    await sql`DELETE FROM usage_events`;
    await sql`DELETE FROM feedback`;
    return {
      results: new PostgresExperimentResults(sql),
      feedback: new PostgresFeedbackStore(sql),
      insert: async (rows: EventRow[]) => {
        await sql.begin(async (tx) => {
          for (const r of rows) {
            await tx`INSERT INTO usage_events (request_id, ts, tenant_id, key_id, user_id, route, requested_model, served_model,
                deployment, prompt_tokens, completion_tokens, cached_tokens, cost_pico, saved_pico, latency_ms, ttft_ms,
                cache, status, attempts, usage_reported, tier, experiment, variant)
              VALUES (${r.requestId}, ${r.ts}, ${r.tenantId}, 'key_1', 'user_1', 'auto', 'auto', 'fast', 'fast@sim',
                ${r.promptTokens}, ${r.completionTokens}, 0, ${r.costPico}, 0, ${r.latencyMs}, ${r.ttftMs},
                'miss', ${r.status}, 1, true, ${r.tier}, ${r.experiment}, ${r.variant})`;
          }
        });
      },
      close: async () => undefined, // usePgSchema ends its pools after the file
    };
  });
});
