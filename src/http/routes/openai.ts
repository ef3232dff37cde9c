/**
 * The OpenAI-compatible routes: /v1/chat/completions, /v1/embeddings, /v1/models. Validation is
 * by JSON schema (compiled once); everything else is the pipeline's.
 */
import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Authenticator } from '../../auth/authenticator.js';
import { extractKey } from '../../auth/keys.js';
import { GatewayError } from '../../errors.js';
import type { KillSwitches } from '../../metering/kill-switches.js';
import type { Logger } from '../../observability/logger.js';
import { type Operation, type OperationRequest, type RequestContext, createContext } from '../../pipeline/context.js';
import type { Pipeline } from '../../pipeline/pipeline.js';
import type { ChatCompletionRequest, EmbeddingRequest } from '../../providers/types.js';
import type { CatalogModel, ModelCatalog } from '../../routing/catalog.js';
import { chatCompletionBodySchema, embeddingsBodySchema } from '../../wire/openai-schemas.js';
import { HttpSink, type OpenStreams } from '../sink.js';
import type { JobService } from '../../jobs/service.js';
import { apiCaller } from './api-caller.js';
import { asyncOptionsFromHeaders, sendAccepted, wantsAsync } from './jobs.js';

export interface OpenAIRoutesOptions {
  pipeline: Pipeline;
  killSwitches: Pick<KillSwitches, 'checkAccess' | 'modelAvailable'>;
  authenticator: Authenticator;
  catalog: ModelCatalog;
  log: Logger;
  /** Tiered routes, listed by /v1/models like models. */
  routes?: ReadonlyArray<{ name: string; model: CatalogModel }>;
  /** Jobs: `Prefer: respond-async` turns the request into one (202). */
  jobs?: JobService;
  /** The SSE answers open, for a shutdown (see OpenStreams). */
  streams?: OpenStreams;
}

export async function openaiRoutes(app: FastifyInstance, opts: OpenAIRoutesOptions): Promise<void> {
  const { pipeline, authenticator, catalog, log, killSwitches } = opts;

  function context(op: OperationRequest, route: string, request: FastifyRequest, reply: FastifyReply): RequestContext {
    // A gateway-generated id is unique already; a client's may repeat, so it gets a random suffix.
    const fromClient = request.headers['x-request-id'] === request.id;
    return createContext({
      ...op,
      id: request.id,
      eventId: fromClient ? `${request.id}~${randomBytes(6).toString('hex')}` : request.id,
      route,
      headers: request.headers,
      sink: new HttpSink(reply, opts.streams),
      log,
    });
  }

  /** `Prefer: respond-async`: the request is queued as a job and answered 202 at once. */
  async function submitAsync(kind: Operation, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const auth = await apiCaller(request, authenticator, killSwitches);
    const { job, created } = await opts.jobs!.submit(auth, kind, request.body, asyncOptionsFromHeaders(request));
    reply.header('preference-applied', 'respond-async');
    return sendAccepted(reply, request, job, created);
  }

  // The bodies' types are what their JSON schemas validated.
  app.post<{ Body: ChatCompletionRequest }>('/v1/chat/completions', { schema: { body: chatCompletionBodySchema } }, async (request, reply) => {
    if (opts.jobs && wantsAsync(request)) return submitAsync('chat', request, reply);
    await pipeline.run(context({ operation: 'chat', body: request.body }, '/v1/chat/completions', request, reply));
    return reply;
  });

  app.post<{ Body: EmbeddingRequest }>('/v1/embeddings', { schema: { body: embeddingsBodySchema } }, async (request, reply) => {
    if (opts.jobs && wantsAsync(request)) return submitAsync('embeddings', request, reply);
    await pipeline.run(context({ operation: 'embeddings', body: request.body }, '/v1/embeddings', request, reply));
    return reply;
  });

  function modelObject(m: CatalogModel) {
    return { id: m.name, object: 'model', created: 0, owned_by: m.ownedBy };
  }

  /** The models the caller's key may use right now (kill switches applied, like on a request). */
  async function visibleModels(request: FastifyRequest): Promise<readonly CatalogModel[]> {
    const auth = await authenticator.authenticate(extractKey(request.headers));
    if (auth.kind !== 'api') throw new GatewayError('invalid_api_key', 'An admin key cannot call the model API; use an API key.');
    killSwitches.checkAccess(auth);
    const allowed = auth.allowedModels;
    const models = catalog.list().filter((m) => (!allowed || allowed.has(m.name)) && killSwitches.modelAvailable(m));
    for (const r of opts.routes ?? []) if (!allowed || allowed.has(r.name)) models.push(r.model);
    return models;
  }

  app.get('/v1/models', async (request, reply) => {
    const models = await visibleModels(request);
    reply.header('x-request-id', request.id);
    return { object: 'list', data: models.map(modelObject) };
  });

  app.get<{ Params: { model: string } }>('/v1/models/*', async (request, reply) => {
    const name = (request.params as Record<string, string>)['*'] ?? '';
    const models = await visibleModels(request);
    const wanted = catalog.resolve(name) ?? opts.routes?.find((r) => r.name === name)?.model;
    const model = wanted && models.includes(wanted) ? wanted : undefined;
    if (!model) throw new GatewayError('model_not_found', `The model '${name}' does not exist or you do not have access to it.`, { param: 'model' });
    reply.header('x-request-id', request.id);
    return modelObject(model);
  });
}
