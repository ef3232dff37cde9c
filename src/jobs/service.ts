/**
 * The job API's service: checks a submission (body, model, options) the way the synchronous API
 * would, so a job that cannot run is refused at once with the field named, then queues it
 * durably and wakes the workers. Used by POST /v1/jobs, the `Prefer: respond-async` shortcut and
 * the Batch API (one `prepare` per line).
 */
import { Ajv, type ValidateFunction } from 'ajv';
import type { AuthInfo } from '../auth/authenticator.js';
import type { JobsConfig } from '../config/jobs-schema.js';
import { GatewayError } from '../errors.js';
import type { ModelCatalog } from '../routing/catalog.js';
import type { Router } from '../routing/router.js';
import { chatCompletionBodySchema, embeddingsBodySchema } from '../wire/openai-schemas.js';
import { validationError } from '../wire/validation-error.js';
import type { JobEvents } from './events.js';
import type { JobAdmission } from './admission.js';
import type { JobKind, JobRecord, JobStore, NewJob } from './types.js';
import { checkWebhookUrl } from './webhook-policy.js';
import { REQUEST_PRIORITIES, type RequestPriority, newJobId, storedPriority } from './wire.js';

/** A submission's options (POST /v1/jobs fields, or the shortcut's headers). */
export interface JobOptions {
  priority?: RequestPriority | undefined;
  webhookUrl?: string | null | undefined;
  /** Unix seconds. */
  deadlineAt?: number | null | undefined;
  metadata?: Record<string, string> | undefined;
  idempotencyKey?: string | null | undefined;
  batchId?: string | null | undefined;
  customId?: string | null | undefined;
}

const METADATA_MAX_KEYS = 16;
const METADATA_MAX_KEY = 64;
const METADATA_MAX_VALUE = 512;

export interface JobServiceOptions {
  store: JobStore;
  events: JobEvents;
  config: JobsConfig;
  catalog: ModelCatalog;
  router?: Pick<Router, 'resolve'>;
  now?: () => number;
  /** Called after jobs were queued (wakes this process's workers and tells the others). */
  onQueued?: (count: number, priority: number) => void;
  /** Called after a job was cancelled (the process running it stops it). */
  onCancelled?: (jobId: string) => void;
  /** False when no signing key is configured (distributed mode without jobs.webhooks.signingSecret). */
  webhooksEnabled?: boolean;
  /** Checked before a job is queued: a budget already used up (402), the tenant's job quotas (src/jobs/admission.ts). */
  admission?: JobAdmission;
}

export class JobService {
  private readonly validators: Record<JobKind, ValidateFunction>;
  private readonly now: () => number;
  /** The JSON size of each prepared body (measured once, by prepare). */
  private readonly sizes = new WeakMap<object, number>();

  constructor(private readonly opts: JobServiceOptions) {
    // The same JSON schemas (src/wire/openai-schemas.ts), and Ajv options, as the synchronous routes (src/http/app.ts).
    const ajv = new Ajv({ coerceTypes: false, allErrors: false, removeAdditional: false, allowUnionTypes: true, strict: false });
    this.validators = { chat: ajv.compile(chatCompletionBodySchema), embeddings: ajv.compile(embeddingsBodySchema) };
    this.now = opts.now ?? Date.now;
  }

  get store(): JobStore {
    return this.opts.store;
  }

  /**
   * Checks a job and builds its record; throws a 4xx GatewayError naming the field (prefixed
   * with `paramPrefix`, e.g. `body.` for POST /v1/jobs) when it cannot run.
   */
  prepare(auth: AuthInfo, kind: JobKind, body: unknown, options: JobOptions, paramPrefix = ''): NewJob {
    const validate = this.validators[kind];
    if (!validate(body)) {
      const err = validationError(validate.errors ?? [], 0);
      const param = err.param === null ? paramPrefix.replace(/\.$/, '') || null : `${paramPrefix}${err.param}`;
      throw new GatewayError(err.code, param && err.param ? err.message.replace(`'${err.param}'`, `'${param}'`) : err.message, param ? { param } : {});
    }
    const request = body as Record<string, unknown> & { model: string; user?: unknown };
    const size = Buffer.byteLength(JSON.stringify(request));
    this.sizes.set(request, size);
    if (size > this.opts.config.maxBodyBytes) {
      throw new GatewayError('body_too_large', `The job's request body is ${size} bytes, over the limit of ${this.opts.config.maxBodyBytes} (jobs.maxBodyBytes).`, {
        param: paramPrefix.replace(/\.$/, '') || null,
      });
    }
    this.checkModel(auth, kind, request.model, `${paramPrefix}model`);
    if (request['stream'] === true && kind === 'chat') {
      // A job's answer is stored whole; its tokens are streamed by GET /v1/jobs/:id/events.
      delete request['stream'];
      delete request['stream_options'];
    }
    const now = this.now();
    const cfg = this.opts.config;
    const priority = options.priority ?? 'normal';
    if (!REQUEST_PRIORITIES.includes(priority)) {
      throw new GatewayError('invalid_value', `Invalid value for 'priority': must be one of 'high', 'normal', 'low'.`, { param: 'priority' });
    }
    let webhookUrl: string | null = null;
    if (options.webhookUrl !== undefined && options.webhookUrl !== null) {
      if (this.opts.webhooksEnabled === false) {
        throw new GatewayError('invalid_value', `Invalid value for 'webhook_url': webhooks need a signing key: set jobs.webhooks.signingSecret in the gateway's config.`, {
          param: 'webhook_url',
        });
      }
      const why = checkWebhookUrl(options.webhookUrl, cfg.webhooks);
      if (why) throw new GatewayError('invalid_value', `Invalid value for 'webhook_url': ${why.replace(/^webhook_url: /, '')}.`, { param: 'webhook_url' });
      webhookUrl = options.webhookUrl;
    }
    let deadlineAt = now + cfg.maxDeadlineMs;
    if (options.deadlineAt !== undefined && options.deadlineAt !== null) {
      const at = options.deadlineAt * 1000;
      if (!Number.isFinite(at) || at <= now) {
        throw new GatewayError('invalid_value', `Invalid value for 'deadline_at': it must be a time in the future (unix seconds).`, { param: 'deadline_at' });
      }
      if (at > now + cfg.maxDeadlineMs) {
        throw new GatewayError(
          'invalid_value',
          `Invalid value for 'deadline_at': at most ${Math.floor(cfg.maxDeadlineMs / 1000)} seconds from now (jobs.maxDeadlineMs).`,
          { param: 'deadline_at' },
        );
      }
      deadlineAt = Math.floor(at);
    }
    const metadata = checkMetadata(options.metadata);
    const tierClass = cfg.priorityByTier[auth.tier] ?? 1;
    const user = typeof request.user === 'string' ? request.user : '';
    return {
      id: newJobId(),
      tenantId: auth.tenantId,
      keyId: auth.keyId,
      userId: auth.userId ?? user,
      kind,
      model: request.model,
      body: request,
      priority: storedPriority(tierClass, priority),
      webhookUrl,
      deadlineAt,
      metadata,
      idempotencyKey: options.idempotencyKey ?? null,
      batchId: options.batchId ?? null,
      customId: options.customId ?? null,
      maxAttempts: cfg.maxAttempts,
      createdAt: now,
    };
  }

  /** Queues one job; the same tenant and Idempotency-Key returns the first job (`created: false`). */
  async submit(auth: AuthInfo, kind: JobKind, body: unknown, options: JobOptions, paramPrefix = ''): Promise<{ job: JobRecord; created: boolean }> {
    const job = this.prepare(auth, kind, body, options, paramPrefix);
    await this.opts.admission?.check(auth, { jobs: 1, bytes: this.bodyBytes(job), endUser: job.userId || null });
    const stored = await this.opts.store.enqueue(job);
    if (stored.created) {
      this.opts.events.publish(job.id, { type: 'queued', job: stored.job });
      this.opts.onQueued?.(1, job.priority);
    }
    return stored;
  }

  /** Queues prepared jobs at once (a batch), all or none. */
  async submitMany(jobs: NewJob[]): Promise<void> {
    if (jobs.length === 0) return;
    await this.opts.store.enqueueMany(jobs);
    this.opts.onQueued?.(jobs.length, jobs[0]!.priority);
  }

  /** The JSON size of a prepared job's body, bytes. */
  bodyBytes(job: NewJob): number {
    return this.sizes.get(job.body) ?? Buffer.byteLength(JSON.stringify(job.body));
  }

  async get(auth: AuthInfo, id: string): Promise<JobRecord> {
    const job = await this.opts.store.get(id, auth.tenantId);
    if (!job) throw new GatewayError('not_found', `No job with id '${id}'.`, { param: 'job_id' });
    return job;
  }

  async cancel(auth: AuthInfo, id: string): Promise<JobRecord> {
    const job = await this.opts.store.cancel(id, auth.tenantId, this.now());
    if (!job) throw new GatewayError('not_found', `No job with id '${id}'.`, { param: 'job_id' });
    if (job.status === 'cancelled') {
      this.opts.events.publish(job.id, { type: 'completed', job });
      this.opts.onCancelled?.(job.id);
    }
    return job;
  }

  private checkModel(auth: AuthInfo, kind: JobKind, name: string, param: string): void {
    const model = this.opts.catalog.resolve(name);
    const route = model ? undefined : this.opts.router?.resolve(name);
    const canonical = model?.name ?? route?.name;
    if (canonical === undefined) {
      throw new GatewayError('model_not_found', `The model '${name}' does not exist or you do not have access to it.`, { param });
    }
    if (auth.allowedModels && !auth.allowedModels.has(canonical)) {
      throw new GatewayError('model_not_allowed', `This API key may not use the model '${name}'.`, { param });
    }
    const type = model ? model.type : 'chat';
    if ((kind === 'chat') !== (type === 'chat')) {
      throw new GatewayError(
        'invalid_value',
        kind === 'chat' ? `The model '${name}' is an embedding model; use the /v1/embeddings endpoint.` : `The model '${name}' is not an embedding model.`,
        { param },
      );
    }
  }
}

function checkMetadata(metadata: Record<string, string> | undefined): Record<string, string> {
  if (metadata === undefined) return {};
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) {
    throw new GatewayError('invalid_type', `Invalid type for 'metadata': expected an object of strings.`, { param: 'metadata' });
  }
  const entries = Object.entries(metadata);
  if (entries.length > METADATA_MAX_KEYS) {
    throw new GatewayError('invalid_value', `Invalid value for 'metadata': at most ${METADATA_MAX_KEYS} keys.`, { param: 'metadata' });
  }
  for (const [k, v] of entries) {
    if (k.length > METADATA_MAX_KEY) {
      throw new GatewayError('invalid_value', `Invalid value for 'metadata': keys are at most ${METADATA_MAX_KEY} characters.`, { param: `metadata.${k.slice(0, 20)}` });
    }
    if (typeof v !== 'string' || v.length > METADATA_MAX_VALUE) {
      throw new GatewayError('invalid_value', `Invalid value for 'metadata.${k}': values are strings of at most ${METADATA_MAX_VALUE} characters.`, {
        param: `metadata.${k}`,
      });
    }
  }
  return { ...metadata };
}
