/**
 * What happens to a job, as it happens: queued, started, token deltas while it runs, a retry,
 * completed (any end: succeeded, failed, cancelled, expired). GET /v1/jobs/:id/events relays them
 * as SSE. Embedded mode delivers in process; distributed mode publishes on a Redis channel per
 * job (`<prefix>job:<id>`), so a client can follow a job run by another process. The deltas of
 * the run in progress are also kept (in memory; in a Redis list, `<prefix>job:<id>:deltas`,
 * deleted at the run's end) and replayed to a follower that joins mid-run, so it sees the whole
 * text, each delta once (`attempt` + `seq`). Best effort:
 * the store stays the truth (the events route re-reads it, and polls it, so a lost message never
 * leaves a client waiting for a job that already ended).
 */
import type { Redis } from 'ioredis';
import type { JobError, JobRecord } from './types.js';

export type JobEvent =
  | { type: 'queued'; job: JobRecord }
  | { type: 'started'; attempt: number }
  /** `seq` counts the deltas of run `attempt` from 1: a follower joining mid-run dedupes by them. */
  | { type: 'delta'; attempt: number; seq: number; index: number; content: string }
  | { type: 'retry'; attempt: number; error: JobError; retryAt: number }
  | { type: 'completed'; job: JobRecord };

export interface JobEvents {
  /** Never throws. */
  publish(jobId: string, event: JobEvent): void;
  /** Returns the unsubscribe function. */
  subscribe(jobId: string, handler: (event: JobEvent) => void): () => void;
  close(): Promise<void>;
}

export class LocalJobEvents implements JobEvents {
  protected readonly handlers = new Map<string, Set<(event: JobEvent) => void>>();
  /** The deltas of each run in progress (replayed to followers that join mid-run). */
  private readonly history = new Map<string, JobEvent[]>();

  publish(jobId: string, event: JobEvent): void {
    if (event.type === 'delta') {
      const h = this.history.get(jobId);
      if (h) h.push(event);
      else this.history.set(jobId, [event]);
    } else if (event.type !== 'queued') this.history.delete(jobId);
    this.deliver(jobId, event);
  }

  protected deliver(jobId: string, event: JobEvent): void {
    const set = this.handlers.get(jobId);
    if (!set) return;
    for (const h of [...set]) {
      try {
        h(event);
      } catch {
        /* a subscriber's failure is its own */
      }
    }
  }

  subscribe(jobId: string, handler: (event: JobEvent) => void): () => void {
    let set = this.handlers.get(jobId);
    if (!set) this.handlers.set(jobId, (set = new Set()));
    set.add(handler);
    this.onFirst(jobId, set.size);
    for (const e of this.history.get(jobId) ?? []) handler(e);
    return () => {
      const s = this.handlers.get(jobId);
      if (!s?.delete(handler)) return;
      if (s.size === 0) {
        this.handlers.delete(jobId);
        this.onLast(jobId);
      }
    };
  }

  protected onFirst(_jobId: string, _size: number): void {}
  protected onLast(_jobId: string): void {}

  async close(): Promise<void> {
    this.handlers.clear();
  }
}

export class RedisJobEvents extends LocalJobEvents {
  constructor(
    private readonly publisher: Redis,
    private readonly subscriber: Redis,
    private readonly prefix: string,
    private readonly onError: (err: unknown) => void = () => undefined,
  ) {
    super();
    subscriber.on('message', (channel: string, message: string) => {
      if (!channel.startsWith(this.channelPrefix)) return;
      try {
        this.deliver(channel.slice(this.channelPrefix.length), JSON.parse(message) as JobEvent);
      } catch (err) {
        this.onError(err);
      }
    });
  }

  private get channelPrefix(): string {
    return `${this.prefix}job:`;
  }

  private readonly subscribing = new Map<string, Promise<unknown>>();

  override publish(jobId: string, event: JobEvent): void {
    // Delivered here too, through the subscription, when this process follows the job.
    const channel = this.channelPrefix + jobId;
    const text = JSON.stringify(event);
    const tx = this.publisher.multi();
    if (event.type === 'delta') tx.rpush(`${channel}:deltas`, text).pexpire(`${channel}:deltas`, 3_600_000);
    else if (event.type !== 'queued') tx.del(`${channel}:deltas`);
    tx.publish(channel, text)
      .exec()
      .catch((err: unknown) => {
        this.onError(err);
        this.deliver(jobId, event); // Redis down: at least this process's followers hear it
      });
  }

  /** Replays the run's deltas so far (after subscribing), then live events, each delta once. */
  override subscribe(jobId: string, handler: (event: JobEvent) => void): () => void {
    let ready = false;
    const buffered: JobEvent[] = [];
    const seen = new Set<string>();
    const pass = (e: JobEvent) => {
      if (e.type === 'delta') {
        const k = `${e.attempt}:${e.seq}`;
        if (seen.has(k)) return;
        seen.add(k);
      }
      handler(e);
    };
    const unsubscribe = super.subscribe(jobId, (e) => (ready ? pass(e) : buffered.push(e)));
    const channel = this.channelPrefix + jobId;
    void (this.subscribing.get(jobId) ?? Promise.resolve())
      .then(() => this.publisher.lrange(`${channel}:deltas`, 0, -1))
      .then((past) => {
        for (const text of past) pass(JSON.parse(text) as JobEvent);
      })
      .catch(this.onError)
      .finally(() => {
        ready = true;
        for (const e of buffered.splice(0)) pass(e);
      });
    return unsubscribe;
  }

  protected override onFirst(jobId: string, size: number): void {
    if (size === 1) {
      const p = this.subscriber.subscribe(this.channelPrefix + jobId).catch(this.onError);
      this.subscribing.set(jobId, p);
      void p.finally(() => this.subscribing.get(jobId) === p && this.subscribing.delete(jobId));
    }
  }

  protected override onLast(jobId: string): void {
    this.subscriber.unsubscribe(this.channelPrefix + jobId).catch(this.onError);
  }

  override async close(): Promise<void> {
    await super.close();
    this.subscriber.disconnect();
    this.publisher.disconnect();
  }
}
