/**
 * The jobs capability's metrics, registered on the gateway's registry: jobs submitted, started,
 * finished and running in this process, their queue wait, webhook deliveries, and the whole
 * queue's depth and oldest age (read from the database in the background, never at scrape time).
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { JobRecord } from './types.js';

/** One queue priority's state, as the job store reports it. */
export interface PriorityQueueStats {
  priority: number;
  queued: number;
  oldestAgeSeconds: number;
}

export class JobMetrics {
  private readonly jobsSubmitted: Counter<'priority'>;
  private readonly jobsStarted: Counter<'priority'>;
  private readonly jobsFinished: Counter<'priority' | 'status'>;
  private readonly jobsRunning: Gauge;
  private readonly jobWait: Histogram<'priority'>;
  private readonly webhookDeliveries: Counter<'outcome'>;

  /** `queueStats` reads the queue's depth; a scrape never calls it (see BackgroundValue). */
  constructor(registry: Registry, sources: { queueStats: () => Promise<PriorityQueueStats[]> }) {
    const registers = [registry];
    this.jobsSubmitted = new Counter({
      name: 'tollgate_jobs_submitted_total',
      help: 'Jobs accepted (POST /v1/jobs, Prefer: respond-async, batch lines), by queue priority (lower runs first).',
      labelNames: ['priority'],
      registers,
    });
    this.jobsStarted = new Counter({
      name: 'tollgate_jobs_started_total',
      help: 'Job runs started by this process (retries and take-overs included), by queue priority.',
      labelNames: ['priority'],
      registers,
    });
    this.jobsFinished = new Counter({
      name: 'tollgate_jobs_finished_total',
      help: 'Jobs ended by this process, by queue priority and status (succeeded, failed, cancelled, expired): the throughput.',
      labelNames: ['priority', 'status'],
      registers,
    });
    this.jobsRunning = new Gauge({ name: 'tollgate_jobs_running', help: 'Jobs running in this process now.', registers });
    this.jobWait = new Histogram({
      name: 'tollgate_job_queue_wait_seconds',
      help: 'Time from submit to a job run starting, by queue priority.',
      labelNames: ['priority'],
      buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600],
      registers,
    });
    this.webhookDeliveries = new Counter({
      name: 'tollgate_job_webhook_deliveries_total',
      help: 'Job webhook delivery attempts by outcome (delivered, retry, failed).',
      labelNames: ['outcome'],
      registers,
    });
    // The whole queue's state (shared by every process in distributed mode) comes from the
    // database, which a scrape must never wait for (a slow or stalled PostgreSQL would take the
    // metrics down with it): a scrape shows the last value read and, when it is older than
    // QUEUE_REFRESH_MS, starts one read in the background (abandoned after QUEUE_READ_TIMEOUT_MS).
    const queue = new BackgroundValue(sources.queueStats);
    new Gauge({
      name: 'tollgate_jobs_queue_depth',
      help: 'Jobs waiting in the queue (all processes), by queue priority: scale workers on it. As read after an earlier scrape, see tollgate_jobs_queue_stats_age_seconds.',
      labelNames: ['priority'],
      registers,
      collect() {
        this.reset();
        for (const p of queue.get() ?? []) this.set({ priority: String(p.priority) }, p.queued);
      },
    });
    new Gauge({
      name: 'tollgate_jobs_queue_stats_age_seconds',
      help: 'Age of the values of tollgate_jobs_queue_depth and tollgate_jobs_oldest_age_seconds (read in the background, never at scrape time); absent before the first read.',
      registers,
      collect() {
        this.reset();
        const age = queue.ageMs();
        if (age !== undefined) this.set(age / 1000);
      },
    });
    new Gauge({
      name: 'tollgate_jobs_oldest_age_seconds',
      help: 'Age of the oldest waiting job, by queue priority (0 when none waits).',
      labelNames: ['priority'],
      registers,
      collect() {
        this.reset();
        for (const p of queue.get() ?? []) this.set({ priority: String(p.priority) }, p.oldestAgeSeconds);
      },
    });
  }

  /** `count` jobs were accepted at `priority`. */
  submitted(priority: number, count: number): void {
    this.jobsSubmitted.inc({ priority: String(priority) }, count);
  }

  /** A run started; `running` is how many run in this process now. A first attempt records its queue wait. */
  started(job: Pick<JobRecord, 'priority' | 'attempts' | 'createdAt'>, running: number): void {
    this.jobsStarted.inc({ priority: String(job.priority) });
    if (job.attempts === 1) this.jobWait.observe({ priority: String(job.priority) }, Math.max(0, Date.now() - job.createdAt) / 1000);
    this.jobsRunning.set(running);
  }

  /** A job ended; `running` is how many still run in this process. */
  finished(job: Pick<JobRecord, 'priority' | 'status'>, running: number): void {
    this.jobsFinished.inc({ priority: String(job.priority), status: job.status });
    this.jobsRunning.set(running);
  }

  /** One webhook delivery attempt ended (a failed one is retried by policy). */
  webhookDelivered(ok: boolean): void {
    this.webhookDeliveries.inc({ outcome: ok ? 'delivered' : 'failed_attempt' });
  }
}

/** How often a scrape may start a new read of the queue's state, and how long one may take. */
const QUEUE_REFRESH_MS = 1_000;
const QUEUE_READ_TIMEOUT_MS = 5_000;

/**
 * A value read in the background: {@link get} returns the last one read at once and starts a new
 * read when it is older than QUEUE_REFRESH_MS and none is in flight (a read that has not ended
 * within QUEUE_READ_TIMEOUT_MS is given up, so a hung one never blocks the next). A failed read
 * keeps the last value (its age shows it).
 */
class BackgroundValue<T> {
  private value: T | undefined;
  private readAt: number | undefined;
  private inFlight: { startedAt: number } | undefined;

  constructor(private readonly read: () => Promise<T>) {}

  get(): T | undefined {
    this.refresh();
    return this.value;
  }

  /** How old the value is (ms); undefined before the first read. */
  ageMs(): number | undefined {
    return this.readAt === undefined ? undefined : Math.max(0, Date.now() - this.readAt);
  }

  private refresh(): void {
    const now = Date.now();
    if (this.inFlight && now - this.inFlight.startedAt < QUEUE_READ_TIMEOUT_MS) return;
    if (this.readAt !== undefined && now - this.readAt < QUEUE_REFRESH_MS) return;
    const token = { startedAt: now };
    this.inFlight = token;
    let p: Promise<T>;
    try {
      p = this.read();
    } catch (err) {
      p = Promise.reject(err);
    }
    p.then(
      (value) => {
        if (this.readAt === undefined || token.startedAt >= this.readAt) {
          this.value = value;
          this.readAt = token.startedAt;
        }
      },
      () => undefined,
    ).finally(() => {
      if (this.inFlight === token) this.inFlight = undefined;
    });
  }
}
