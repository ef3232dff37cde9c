/**
 * The simulator's control API, for tests driving a SimServer over HTTP:
 *   GET  /_sim/stats   -> SimStats
 *   POST /_sim/faults  a partial FaultConfig; replaces the fault rates (omitted fields: defaults)
 *   POST /_sim/script  { outcomes: SimOutcome[] }; queued for the next requests, in order
 *   POST /_sim/reset   clears the script and the stats
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import type { FaultConfig } from '../../config/schema.js';
import type { SimEngine } from './engine.js';
import { readJson, sendJson } from './http-io.js';
import { SimError, simOutcomeSchema } from './outcomes.js';

const scriptBodySchema = z.object({ outcomes: z.array(simOutcomeSchema) }).strict();

function zodMessage(err: z.ZodError): string {
  return err.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; ');
}

export async function handleControl(engine: SimEngine, path: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (path === '/_sim/stats' && req.method === 'GET') return sendJson(res, 200, engine.stats());
  if (req.method !== 'POST') throw new SimError(405, `Method ${req.method} not allowed on ${path}.`, { code: 'method_not_allowed' });
  const body = await readJson(req);
  try {
    switch (path) {
      case '/_sim/faults':
        engine.setFaults((body ?? {}) as Partial<FaultConfig>);
        return sendJson(res, 200, { faults: engine.faults });
      case '/_sim/script':
        engine.script(scriptBodySchema.parse(body).outcomes);
        return sendJson(res, 200, { queued: engine.scriptedLeft });
      case '/_sim/reset':
        engine.reset();
        return sendJson(res, 200, { ok: true });
    }
  } catch (err) {
    if (err instanceof z.ZodError) throw new SimError(400, zodMessage(err), { code: 'invalid_value' });
    throw err;
  }
  throw new SimError(404, `Unknown route ${path}.`, { code: 'not_found' });
}
