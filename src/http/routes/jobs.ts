/**
 * The job API: POST /v1/jobs (202 with the job), GET /v1/jobs (the caller's jobs, newest first,
 * cursor pagination, filters), GET /v1/jobs/:id, DELETE /v1/jobs/:id (cancel),
 * GET /v1/jobs/:id/events (SSE: queued, started, delta, retry, completed), and
 * GET /v1/jobs/:id/deliveries (the webhook delivery log). Also the `Prefer: respond-async`
 * shortcut's answer (`acceptAsync`), used by the OpenAI routes.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Authenticator } from '../../auth/authenticator.js';
import { GatewayError } from '../../errors.js';
import type { JobEvent, JobEvents } from '../../jobs/events.js';
import type { JobOptions, JobService } from '../../jobs/service.js';
import { TERMINAL_STATUSES, type JobKind, type JobRecord, type JobStatus } from '../../jobs/types.js';
import { REQUEST_PRIORITIES, type RequestPriority, jobObject } from '../../jobs/wire.js';
import type { KillSwitches } from '../../metering/kill-switches.js';
import { apiCaller } from './api-caller.js';
import { listObject } from './lists.js';

/** An open job event stream, as a shutdown sees it. */
export interface JobStream {
  /** Reads the job once more, sends `completed` when it has ended, then ends the stream. */
  finish(): Promise<void>;
  /** Ends the stream now. */
  end(): void;
}

export interface JobRoutesOptions {
  jobs: JobService;
  events: JobEvents;
  authenticator: Authenticator;
  killSwitches: Pick<KillSwitches, 'checkAccess'>;
  /** Open event streams, ended on shutdown (after the workers stopped). */
  streams: Set<JobStream>;
  /** How often an open event stream re-reads the job (a lost pub/sub message never strands a client). */
  pollMs?: number;
}

const JOB_FIELDS = new Set(['endpoint', 'body', 'priority', 'webhook_url', 'deadline_at', 'metadata']);
const ENDPOINTS: Record<string, JobKind> = { '/v1/chat/completions': 'chat', '/v1/embeddings': 'embeddings' };
const STATUSES: readonly JobStatus[] = ['queued', 'running', ...TERMINAL_STATUSES];

const submitSchema = {
  type: 'object',
  required: ['body'],
  properties: {
    endpoint: { type: 'string', enum: Object.keys(ENDPOINTS) },
    body: { type: 'object' },
    priority: { type: 'string', enum: [...REQUEST_PRIORITIES] },
    webhook_url: { type: ['string', 'null'], maxLength: 2048 },
    deadline_at: { type: ['number', 'null'] },
    metadata: { type: 'object', additionalProperties: { type: 'string' } },
  },
};

function idempotencyKeyOf(request: FastifyRequest): string | null {
  const key = request.headers['idempotency-key'];
  return typeof key === 'string' && key !== '' ? key.slice(0, 255) : null;
}

/** The 202 answer to an accepted job. */
export function sendAccepted(reply: FastifyReply, request: FastifyRequest, job: JobRecord, created: boolean): FastifyReply {
  return reply
    .code(created ? 202 : 200)
    .header('x-request-id', request.id)
    .header('location', `/v1/jobs/${job.id}`)
    .send(jobObject(job));
}

/** `Prefer: respond-async` on /v1/chat/completions or /v1/embeddings: the request becomes a job. */
export function wantsAsync(request: FastifyRequest): boolean {
  const prefer = request.headers['prefer'];
  return typeof prefer === 'string' && /(^|[\s,;])respond-async($|[\s,;])/i.test(prefer);
}

/** The shortcut's options, from headers: x-tollgate-priority, x-tollgate-webhook-url, x-tollgate-deadline-at. */
export function asyncOptionsFromHeaders(request: FastifyRequest): JobOptions {
  const h = request.headers;
  const opts: JobOptions = { idempotencyKey: idempotencyKeyOf(request) };
  const priority = h['x-tollgate-priority'];
  if (typeof priority === 'string') {
    if (!REQUEST_PRIORITIES.includes(priority as RequestPriority)) {
      throw new GatewayError('invalid_value', `Invalid value for 'x-tollgate-priority': must be one of 'high', 'normal', 'low'.`, { param: 'x-tollgate-priority' });
    }
    opts.priority = priority as RequestPriority;
  }
  const webhook = h['x-tollgate-webhook-url'];
  if (typeof webhook === 'string') opts.webhookUrl = webhook;
  const deadline = h['x-tollgate-deadline-at'];
  if (typeof deadline === 'string') {
    const n = Number(deadline);
    if (!Number.isFinite(n)) throw new GatewayError('invalid_value', `Invalid value for 'x-tollgate-deadline-at': expected unix seconds.`, { param: 'x-tollgate-deadline-at' });
    opts.deadlineAt = n;
  }
  return opts;
}

export async function jobRoutes(app: FastifyInstance, opts: JobRoutesOptions): Promise<void> {
  const { jobs, events, authenticator, killSwitches } = opts;
  const caller = (request: FastifyRequest) => apiCaller(request, authenticator, killSwitches);

  app.post('/v1/jobs', { schema: { body: submitSchema } }, async (request, reply) => {
    const auth = await caller(request);
    const body = request.body as Record<string, unknown>;
    for (const field of Object.keys(body)) {
      if (!JOB_FIELDS.has(field)) throw new GatewayError('invalid_value', `Unknown parameter: '${field}'.`, { param: field });
    }
    const kind = ENDPOINTS[(body['endpoint'] as string | undefined) ?? '/v1/chat/completions']!;
    const { job, created } = await jobs.submit(
      auth,
      kind,
      body['body'],
      {
        priority: body['priority'] as RequestPriority | undefined,
        webhookUrl: body['webhook_url'] as string | null | undefined,
        deadlineAt: body['deadline_at'] as number | null | undefined,
        metadata: body['metadata'] as Record<string, string> | undefined,
        idempotencyKey: idempotencyKeyOf(request),
      },
      'body.',
    );
    return sendAccepted(reply, request, job, created);
  });

  app.get('/v1/jobs', async (request, reply) => {
    const auth = await caller(request);
    const q = request.query as Record<string, string | string[] | undefined>;
    const one = (name: string): string | undefined => {
      const v = q[name];
      if (Array.isArray(v)) throw new GatewayError('invalid_value', `Invalid value for '${name}': give it once.`, { param: name });
      return v;
    };
    const limitText = one('limit');
    const limit = limitText === undefined ? 20 : Number(limitText);
    if (!Number.isInteger(limit) || limit < 1 || limit > 100) {
      throw new GatewayError('invalid_value', `Invalid value for 'limit': an integer from 1 to 100.`, { param: 'limit' });
    }
    const status = one('status');
    if (status !== undefined && !STATUSES.includes(status as JobStatus)) {
      throw new GatewayError('invalid_value', `Invalid value for 'status': must be one of ${STATUSES.map((s) => `'${s}'`).join(', ')}.`, { param: 'status' });
    }
    const metaKeys = Object.keys(q).filter((k) => k.startsWith('metadata.') || k.startsWith('metadata['));
    if (metaKeys.length > 1) throw new GatewayError('invalid_value', 'Filter on one metadata key at a time.', { param: metaKeys[1]! });
    const metaKey = metaKeys[0];
    const model = one('model');
    const batchId = one('batch_id');
    const after = one('after');
    const page = await jobs.store.list({
      tenantId: auth.tenantId,
      limit,
      ...(status ? { status: status as JobStatus } : {}),
      ...(model ? { model } : {}),
      ...(batchId ? { batchId } : {}),
      ...(after ? { after } : {}),
      ...(metaKey ? { metadata: { key: metaKey.replace(/^metadata[.[]/, '').replace(/]$/, ''), value: one(metaKey) ?? '' } } : {}),
    });
    reply.header('x-request-id', request.id);
    return listObject(page, jobObject);
  });

  app.get<{ Params: { id: string } }>('/v1/jobs/:id', async (request, reply) => {
    const auth = await caller(request);
    reply.header('x-request-id', request.id);
    return jobObject(await jobs.get(auth, request.params.id));
  });

  app.delete<{ Params: { id: string } }>('/v1/jobs/:id', async (request, reply) => {
    const auth = await caller(request);
    const before = await jobs.get(auth, request.params.id);
    if (before.status === 'succeeded' || before.status === 'failed' || before.status === 'expired') {
      throw new GatewayError('conflict', `The job '${before.id}' has already ended (${before.status}); it cannot be cancelled.`, { param: 'job_id' });
    }
    const job = await jobs.cancel(auth, request.params.id);
    reply.header('x-request-id', request.id);
    return jobObject(job);
  });

  app.get<{ Params: { id: string } }>('/v1/jobs/:id/deliveries', async (request, reply) => {
    const auth = await caller(request);
    const job = await jobs.get(auth, request.params.id);
    const list = await jobs.store.deliveries(job.id);
    reply.header('x-request-id', request.id);
    return {
      object: 'list',
      data: list.map((d) => ({
        object: 'webhook_delivery',
        attempt: d.attempt,
        at: Math.floor(d.at / 1000),
        status_code: d.statusCode,
        error: d.error === '' ? null : d.error,
        duration_ms: d.durationMs,
      })),
    };
  });

  app.get<{ Params: { id: string } }>('/v1/jobs/:id/events', async (request, reply) => {
    const auth = await caller(request);
    const first = await jobs.get(auth, request.params.id);
    followJob(request, reply, first, { events, store: jobs.store, streams: opts.streams, pollMs: opts.pollMs ?? 2_000 });
    return reply;
  });
}

/**
 * Streams a job's events as SSE until it ends: the current state first (queued or started), then
 * what happens (deltas while it runs), and `completed` with the job object, then the stream ends.
 */
function followJob(
  request: FastifyRequest,
  reply: FastifyReply,
  first: JobRecord,
  deps: { events: JobEvents; store: JobService['store']; streams: Set<JobStream>; pollMs: number },
): void {
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    'x-accel-buffering': 'no',
    'x-request-id': request.id,
  });
  let ended = false;
  const write = (event: string, data: unknown) => {
    if (!ended && !res.destroyed) res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  };
  let unsubscribe = () => {};
  let poll: NodeJS.Timeout | undefined;
  let ping: NodeJS.Timeout | undefined;
  const end = () => {
    if (ended) return;
    ended = true;
    unsubscribe();
    clearInterval(poll);
    clearInterval(ping);
    deps.streams.delete(stream);
    if (!res.destroyed) res.end();
  };
  const finish = (job: JobRecord) => {
    write('completed', jobObject(job));
    end();
  };
  const check = async () => {
    const job = await deps.store.get(first.id).catch(() => undefined);
    if (job && TERMINAL_STATUSES.includes(job.status)) finish(job);
  };
  /** Shutdown: the job's last state (its result, when the stopped worker finished it), then the end. */
  const stream: JobStream = { finish: () => check().finally(end), end };
  if (TERMINAL_STATUSES.includes(first.status)) {
    finish(first);
    return;
  }
  // The state as read, then (subscribed) what happens: the deltas of the run so far are replayed
  // first; the job is re-read after subscribing, so an end in between is not missed.
  write(first.status === 'running' ? 'started' : 'queued', first.status === 'running' ? { type: 'started', attempt: first.attempts } : jobObject(first));
  unsubscribe = deps.events.subscribe(first.id, (e: JobEvent) => {
    if (e.type === 'completed') {
      // The store has the stored result (the event's copy may predate it in another process).
      deps.store.get(first.id).then((job) => finish(job && TERMINAL_STATUSES.includes(job.status) ? job : e.job), () => finish(e.job));
    } else if (e.type === 'queued') write('queued', jobObject(e.job));
    else write(e.type, e);
  });
  poll = setInterval(() => void check(), deps.pollMs);
  ping = setInterval(() => !ended && !res.destroyed && res.write(': ping\n\n'), 15_000);
  poll.unref();
  ping.unref();
  deps.streams.add(stream);
  res.once('close', end);
  void check();
}
