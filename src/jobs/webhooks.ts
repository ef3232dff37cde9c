/**
 * Job webhooks: when a job with a `webhook_url` ends (succeeded, failed, cancelled, expired), the
 * store writes a pending entry in its webhook outbox in the same transaction as the status; the
 * {@link WebhookDispatcher} of any process claims due entries (a lease, so one process delivers
 * each attempt), POSTs the event, and records the attempt and the next state (delivered; pending
 * again after a backoff; failed for good: src/jobs/webhook-events.ts).
 *
 * Each delivery is signed like every Tollgate webhook (src/observability/webhook.ts):
 * `x-tollgate-timestamp` and `x-tollgate-signature: v1=<hex HMAC-SHA256(secret, ts + "." + body)>`,
 * with a per-tenant secret derived from the master key (`jobs.webhooks.signingSecret`, or a
 * random key kept in the storage folder in embedded mode: src/jobs/webhook-secret.ts).
 * `webhook-id` is the same on every attempt of one event, so receivers can drop redeliveries
 * (delivery is at least once).
 *
 * Where deliveries may go is `jobs.webhooks` (src/jobs/webhook-policy.ts), enforced at delivery
 * too: the URL is re-checked, and every address its host resolves to is checked inside the
 * connection's DNS lookup, so the address connected to is the one checked (DNS rebinding).
 * Redirects are never followed.
 */
import { promises as dns, type LookupAddress } from 'node:dns';
import type { LookupFunction } from 'node:net';
import { performance } from 'node:perf_hooks';
import { Agent, request } from 'undici';
import type { Logger } from '../observability/logger.js';
import { signWebhook } from '../observability/webhook.js';
import type { JobRecord, JobStore, WebhookDelivery } from './types.js';
import { WebhookPolicyError, policyErrorOf, shortError } from './webhook-errors.js';
import { jobWebhookBody, jobWebhookEvent, jobWebhookId, nextWebhookState, parseRetryAfter } from './webhook-events.js';
import { checkResolvedAddress, checkWebhookUrl, type WebhookPolicy } from './webhook-policy.js';
import { tenantWebhookSecret } from './webhook-secret.js';

/** Resolves a host name to every address (default: dns.lookup with `all: true`). */
export type WebhookResolver = (hostname: string) => Promise<LookupAddress[]>;

export interface WebhookDispatcherOptions {
  store: Pick<JobStore, 'claimWebhooks' | 'recordDelivery'>;
  policy: WebhookPolicy;
  /** The master key (resolveMasterSecret); each tenant signs with tenantWebhookSecret(master, tenant). */
  masterSecret: string;
  /** This process's id: the owner of the outbox leases it takes. */
  owner: string;
  log: Logger;
  /** How often an idle dispatcher looks for due deliveries (default 500 ms); `wake()` looks now. */
  pollMs?: number;
  /** Deliveries in flight at once (default 8). */
  concurrency?: number;
  now?: () => number;
  random?: () => number;
  /** Called after each attempt is recorded (ok: the receiver answered 2xx). */
  onDelivered?: (jobId: string, ok: boolean) => void;
  /** Name resolution of webhook hosts (tests); every address is checked against the policy. */
  resolve?: WebhookResolver;
}

interface AttemptOutcome {
  statusCode: number | null;
  /** '' when delivered. */
  error: string;
  retryAfterMs?: number | undefined;
  /** Aborted by stop(): not recorded. */
  interrupted?: boolean;
  /** The address a policy refusal was about: logged for the operator, not recorded. */
  refusedAddress?: string | undefined;
}

const LEASE_SLACK_MS = 5_000;

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return '';
  }
}

const defaultResolve: WebhookResolver = (hostname) => dns.lookup(hostname, { all: true });

export class WebhookDispatcher {
  private readonly pollMs: number;
  private readonly concurrency: number;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly resolve: WebhookResolver;
  private agent: Agent | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private stopping = false;
  private ticking: Promise<void> | undefined;
  private again = false;
  /** The last claim filled every free slot: more may be due, look again when a slot frees. */
  private backlog = false;
  private readonly inFlight = new Map<string, { done: Promise<void>; abort: AbortController }>();

  constructor(private readonly opts: WebhookDispatcherOptions) {
    this.pollMs = opts.pollMs ?? 500;
    this.concurrency = Math.max(1, opts.concurrency ?? 8);
    this.now = opts.now ?? Date.now;
    this.random = opts.random ?? Math.random;
    this.resolve = opts.resolve ?? defaultResolve;
  }

  /** Deliveries in flight now. */
  get active(): number {
    return this.inFlight.size;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.stopping = false;
    this.agent = new Agent({ connect: { lookup: this.lookup }, keepAliveTimeout: 4_000 });
    this.schedule(0);
  }

  /** Looks for due deliveries now (e.g. a job just finished). */
  wake(): void {
    if (!this.running || this.stopping) return;
    this.schedule(0);
  }

  /**
   * Stops claiming, then waits up to `graceMs` for the deliveries in flight. Those still running
   * then are aborted and not recorded: their lease runs out and a process delivers them again
   * (same webhook-id).
   */
  async stop(graceMs = 5_000): Promise<void> {
    if (!this.running) return;
    this.stopping = true;
    this.running = false;
    clearTimeout(this.timer);
    this.timer = undefined;
    const settled = (async () => {
      await this.ticking;
      await Promise.allSettled([...this.inFlight.values()].map((f) => f.done));
    })();
    let graceTimer: NodeJS.Timeout | undefined;
    const grace = new Promise<'timeout'>((resolve) => {
      graceTimer = setTimeout(() => resolve('timeout'), graceMs);
    });
    const outcome = await Promise.race([settled.then(() => 'done' as const), grace]);
    clearTimeout(graceTimer);
    if (outcome === 'timeout' && this.inFlight.size > 0) {
      this.opts.log.warn({ inFlight: this.inFlight.size, graceMs }, 'job webhooks: stopping with deliveries in flight; they will be redelivered');
      for (const f of this.inFlight.values()) f.abort.abort(new Error('shutting down'));
      let shortTimer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.allSettled([...this.inFlight.values()].map((f) => f.done)),
        new Promise((resolve) => {
          shortTimer = setTimeout(resolve, Math.min(1_000, graceMs));
        }),
      ]);
      clearTimeout(shortTimer);
    }
    const agent = this.agent;
    this.agent = undefined;
    await agent?.destroy().catch(() => undefined);
  }

  private schedule(ms: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.tick(), ms);
    this.timer.unref();
  }

  private tick(): void {
    if (!this.running || this.stopping) return;
    if (this.ticking) {
      this.again = true;
      return;
    }
    this.ticking = this.poll().finally(() => {
      this.ticking = undefined;
      if (!this.running || this.stopping) return;
      if (this.again) {
        this.again = false;
        this.schedule(0);
      } else {
        this.schedule(this.pollMs);
      }
    });
  }

  private async poll(): Promise<void> {
    const free = this.concurrency - this.inFlight.size;
    if (free <= 0) {
      this.backlog = true;
      return;
    }
    let jobs: JobRecord[];
    try {
      jobs = await this.opts.store.claimWebhooks({
        owner: this.opts.owner,
        limit: free,
        leaseMs: this.opts.policy.timeoutMs + LEASE_SLACK_MS,
        now: this.now(),
      });
    } catch (err) {
      this.opts.log.error({ err: shortError(err) }, 'job webhooks: claiming due deliveries failed; retrying on the next poll');
      return;
    }
    this.backlog = jobs.length >= free;
    for (const job of jobs) {
      if (this.inFlight.has(job.id)) continue;
      const abort = new AbortController();
      const done = this.deliver(job, abort.signal)
        .catch((err: unknown) => {
          this.opts.log.error({ jobId: job.id, err: shortError(err) }, 'job webhooks: delivery failed unexpectedly');
        })
        .finally(() => {
          this.inFlight.delete(job.id);
          if (this.backlog) this.tick();
        });
      this.inFlight.set(job.id, { done, abort });
    }
  }

  private async deliver(job: JobRecord, stopSignal: AbortSignal): Promise<void> {
    const attempt = (job.webhook?.attempts ?? 0) + 1;
    const started = performance.now();
    const outcome = await this.attempt(job, stopSignal);
    if (outcome.interrupted) return; // stop(): not recorded, delivered again after the lease
    const durationMs = Math.round(performance.now() - started);
    const now = this.now();
    const policy = this.opts.policy;
    const next = nextWebhookState({ attempt, statusCode: outcome.statusCode, retryAfterMs: outcome.retryAfterMs, policy, now, random: this.random });
    const delivery: WebhookDelivery = { jobId: job.id, attempt, at: now, statusCode: outcome.statusCode, error: outcome.error, durationMs };
    const ok = next.state === 'delivered';
    const fields = {
      jobId: job.id,
      attempt,
      status: outcome.statusCode,
      host: hostOf(job.webhookUrl ?? ''),
      durationMs,
      // The operator may see what the name resolved to; the delivery log (the tenant's) does not say.
      ...(outcome.refusedAddress ? { refusedAddress: outcome.refusedAddress } : {}),
    };
    if (ok) this.opts.log.debug(fields, 'job webhook delivered');
    else if (next.state === 'failed') this.opts.log.warn({ ...fields, error: outcome.error }, 'job webhook given up');
    else this.opts.log.info({ ...fields, error: outcome.error, retryInMs: next.nextAt - now }, 'job webhook attempt failed; will retry');
    try {
      await this.opts.store.recordDelivery(delivery, next);
    } catch (err) {
      this.opts.log.error({ jobId: job.id, attempt, err: shortError(err) }, 'job webhooks: recording a delivery attempt failed; it is retried after its lease');
    }
    try {
      this.opts.onDelivered?.(job.id, ok);
    } catch {
      /* a listener's error is not the dispatcher's */
    }
  }

  private async attempt(job: JobRecord, stopSignal: AbortSignal): Promise<AttemptOutcome> {
    const policy = this.opts.policy;
    const url = job.webhookUrl;
    if (!url) return { statusCode: null, error: 'the job has no webhook_url' };
    const event = jobWebhookEvent(job.status);
    if (!event) return { statusCode: null, error: `the job is ${job.status}, not finished` };
    const refused = checkWebhookUrl(url, policy);
    if (refused) return { statusCode: null, error: refused };
    const agent = this.agent;
    if (!agent) return { statusCode: null, error: 'shutting down', interrupted: true };

    const now = this.now();
    const body = jobWebhookBody(job, event, now);
    const timestamp = Math.floor(now / 1000);
    const id = jobWebhookId(job.id, event);
    const timeout = AbortSignal.timeout(policy.timeoutMs);
    const signal = AbortSignal.any([timeout, stopSignal]);
    try {
      const res = await request(url, {
        method: 'POST',
        dispatcher: agent,
        signal,
        headers: {
          'content-type': 'application/json',
          'user-agent': 'tollgate-webhook/1',
          'webhook-id': id,
          'x-tollgate-event': event,
          'x-tollgate-timestamp': String(timestamp),
          'x-tollgate-signature': signWebhook(tenantWebhookSecret(this.opts.masterSecret, job.tenantId), timestamp, body),
        },
        body,
      });
      await res.body.dump({ limit: 64 * 1024, signal }).catch(() => undefined);
      const ok = res.statusCode >= 200 && res.statusCode < 300;
      return {
        statusCode: res.statusCode,
        error: ok ? '' : `HTTP ${res.statusCode}`,
        retryAfterMs: ok ? undefined : parseRetryAfter(res.headers['retry-after'], this.now()),
      };
    } catch (err) {
      if (timeout.aborted) return { statusCode: null, error: `timed out after ${policy.timeoutMs} ms (jobs.webhooks.timeoutMs)` };
      if (stopSignal.aborted) return { statusCode: null, error: 'shutting down', interrupted: true };
      return { statusCode: null, error: shortError(err), refusedAddress: policyErrorOf(err)?.address };
    }
  }

  /**
   * The connection's DNS lookup: resolves every address and refuses the connection when any of
   * them is not allowed (so a name cannot pass with one public address and connect to another).
   * Literal IP hosts never come here (node:net connects to them directly): the URL check covers
   * them.
   */
  private readonly lookup: LookupFunction = (hostname, options, callback) => {
    const family = options.family === 'IPv4' ? 4 : options.family === 'IPv6' ? 6 : (options.family ?? 0);
    this.resolve(hostname)
      .then((addresses) => {
        for (const a of addresses) {
          const why = checkResolvedAddress(a.address, a.family, this.opts.policy, hostname);
          if (why) throw new WebhookPolicyError(why, a.address);
        }
        const usable = family === 0 ? addresses : addresses.filter((a) => a.family === family);
        if (usable.length === 0) {
          const err = new Error(`getaddrinfo ENOTFOUND ${hostname}`) as NodeJS.ErrnoException;
          err.code = 'ENOTFOUND';
          throw err;
        }
        return usable;
      })
      .then(
        (usable) => {
          const first = usable[0]!;
          if (options.all) callback(null, usable);
          else callback(null, first.address, first.family);
        },
        (err: NodeJS.ErrnoException) => callback(err, ''),
      );
  };
}
