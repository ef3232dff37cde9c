/**
 * OpenAI's Batch API: POST /v1/batches, GET /v1/batches, GET /v1/batches/:id,
 * POST /v1/batches/:id/cancel. The work is BatchService's (src/jobs/batches.ts); this is HTTP.
 */
import type { FastifyInstance } from 'fastify';
import type { Authenticator } from '../../auth/authenticator.js';
import type { BatchService } from '../../jobs/batches.js';
import { BATCH_ENDPOINTS, type BatchEndpoint, COMPLETION_WINDOWS, batchObject } from '../../jobs/wire.js';
import type { KillSwitches } from '../../metering/kill-switches.js';
import { apiCaller } from './api-caller.js';
import { listObject, pageQuery } from './lists.js';

export interface BatchRoutesOptions {
  batches: BatchService;
  authenticator: Pick<Authenticator, 'authenticate'>;
  killSwitches: Pick<KillSwitches, 'checkAccess'>;
}

export const createBatchBodySchema = {
  type: 'object',
  required: ['input_file_id', 'endpoint', 'completion_window'],
  properties: {
    input_file_id: { type: 'string', minLength: 1, maxLength: 128 },
    endpoint: { type: 'string', enum: Object.keys(BATCH_ENDPOINTS) },
    completion_window: { type: 'string', enum: Object.keys(COMPLETION_WINDOWS) },
    // OpenAI's rules: up to 16 pairs, keys up to 64 characters, values up to 512.
    metadata: {
      type: ['object', 'null'],
      maxProperties: 16,
      propertyNames: { maxLength: 64 },
      additionalProperties: { type: 'string', maxLength: 512 },
    },
  },
} as const;

interface CreateBatchBody {
  input_file_id: string;
  endpoint: BatchEndpoint;
  completion_window: string;
  metadata?: Record<string, string> | null;
}

export async function batchRoutes(app: FastifyInstance, opts: BatchRoutesOptions): Promise<void> {
  const { batches, authenticator, killSwitches } = opts;

  app.post<{ Body: CreateBatchBody }>('/v1/batches', { schema: { body: createBatchBodySchema } }, async (request, reply) => {
    const auth = await apiCaller(request, authenticator, killSwitches);
    const body = request.body;
    const batch = await batches.create(auth, {
      inputFileId: body.input_file_id,
      endpoint: body.endpoint,
      completionWindow: body.completion_window,
      metadata: body.metadata,
    });
    reply.header('x-request-id', request.id);
    return batchObject(batch);
  });

  app.get('/v1/batches', async (request, reply) => {
    const auth = await apiCaller(request, authenticator, killSwitches);
    const page = await batches.list(auth, pageQuery(request.query));
    reply.header('x-request-id', request.id);
    return listObject(page, batchObject);
  });

  app.get<{ Params: { id: string } }>('/v1/batches/:id', async (request, reply) => {
    const auth = await apiCaller(request, authenticator, killSwitches);
    const batch = await batches.get(auth, request.params.id);
    reply.header('x-request-id', request.id);
    return batchObject(batch);
  });

  app.post<{ Params: { id: string } }>('/v1/batches/:id/cancel', async (request, reply) => {
    const auth = await apiCaller(request, authenticator, killSwitches);
    const batch = await batches.cancel(auth, request.params.id);
    reply.header('x-request-id', request.id);
    return batchObject(batch);
  });
}
