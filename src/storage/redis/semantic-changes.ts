/**
 * The change feed of the Redis semantic store (src/storage/redis/semantic-cache.ts): what one
 * gateway process announces on the channel `<p>sc:changes` and how the others hear it.
 *
 * Messages: JSON `{origin, kind, id | ids | threshold | filter}`, published by the store in the
 * same MULTI (or script) as the change. `put` messages carry only the id; the receiver fetches
 * the entry. A process never hears its own messages (origin: a random id per store instance).
 *
 * Delivery to listeners: messages are handled in order, a batch at a time (the entries of a
 * batch's puts fetched in one pipeline), so a put followed by a delete never arrives reversed.
 * Pub/sub loses what is published while the subscriber is disconnected: after it reconnects and
 * has subscribed again, the feed calls the `onResync` callbacks, whose job is to rebuild the
 * index from `scan` (entries still missed are also caught by `get` returning undefined on hit).
 * The subscriber connection is the feed's own, opened on the first `subscribe` or
 * `whenSubscribed`, and closed by `close()`.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { CacheFilter, SemanticChange, SemanticEntry } from '../../cache/types.js';
import { quit } from './commands.js';

export type MessageBody =
  | { kind: 'put'; id: string }
  | { kind: 'delete'; ids: string[] }
  | { kind: 'threshold'; id: string; threshold: number | null }
  | { kind: 'invalidate'; filter: CacheFilter };
type Message = MessageBody & { origin: string };

export interface SemanticChangeFeedOptions {
  channel: string;
  /** Opens the dedicated pub/sub connection (Redis needs one for SUBSCRIBE); the feed owns it. */
  openSubscriber: () => Redis | Promise<Redis>;
  /** The entries of announced puts, by id (those gone or expired left out). */
  fetch: (ids: string[]) => Promise<Map<string, SemanticEntry>>;
  onError: (err: unknown) => void;
}

export class SemanticChangeFeed {
  /** This process's id in the messages it publishes. */
  readonly origin = randomUUID();
  readonly #opts: SemanticChangeFeedOptions;
  readonly #listeners = new Set<(change: SemanticChange) => void>();
  readonly #resyncs = new Set<() => void>();
  #subscriber: Redis | undefined;
  #subscribed: Promise<void> | undefined;
  #abortSubscribe: ((err: Error) => void) | undefined;
  #queue: Message[] = [];
  #draining = false;
  #closed = false;

  constructor(opts: SemanticChangeFeedOptions) {
    this.#opts = opts;
  }

  /** The text to publish for a change of this process. */
  message(change: MessageBody): string {
    return JSON.stringify({ origin: this.origin, ...change });
  }

  subscribe(listener: (change: SemanticChange) => void): () => void {
    this.#listeners.add(listener);
    this.whenSubscribed().catch(this.#opts.onError);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  /** Resolves once the subscriber connection has subscribed to the channel (opening it if needed). */
  whenSubscribed(): Promise<void> {
    this.#subscribed ??= this.#startSubscriber().catch((err: unknown) => {
      this.#subscribed = undefined; // the next call tries again
      throw err;
    });
    return this.#subscribed;
  }

  onResync(cb: () => void): () => void {
    this.#resyncs.add(cb);
    return () => {
      this.#resyncs.delete(cb);
    };
  }

  /** Idempotent: drops the listeners and what is queued, disconnects the subscriber. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#listeners.clear();
    this.#resyncs.clear();
    this.#queue = [];
    this.#abortSubscribe?.(new Error('semantic store is closed'));
    this.#abortSubscribe = undefined;
    const sub = this.#subscriber;
    this.#subscriber = undefined;
    if (sub) await quit(sub, true);
  }

  async #startSubscriber(): Promise<void> {
    const sub = await this.#opts.openSubscriber();
    if (this.#closed) {
      await quit(sub, true);
      throw new Error('semantic store is closed');
    }
    this.#subscriber = sub;
    if (sub.listenerCount('error') === 0) sub.on('error', () => {}); // failures surface as reconnects; see onResync
    sub.on('message', (channel: string, text: string) => {
      if (channel === this.#opts.channel) this.#receive(text);
    });
    await new Promise<void>((resolve, reject) => {
      this.#abortSubscribe = reject;
      let subscribedOnce = false;
      // On the first 'ready', and on every later one (a reconnection: ioredis resubscribes by
      // itself too, and a second SUBSCRIBE is harmless). A failed attempt is retried on the next.
      const attempt = () => {
        if (this.#closed) return;
        sub.subscribe(this.#opts.channel).then(
          () => {
            if (!subscribedOnce) {
              subscribedOnce = true;
              this.#abortSubscribe = undefined;
              resolve();
              return;
            }
            for (const cb of this.#resyncs) {
              try {
                cb();
              } catch (err) {
                this.#opts.onError(err);
              }
            }
          },
          (err: unknown) => this.#opts.onError(err),
        );
      };
      sub.on('ready', attempt);
      if (sub.status === 'ready') attempt();
      else if (sub.status === 'wait') sub.connect().catch(() => {});
    });
  }

  #receive(text: string): void {
    let message: Message;
    try {
      message = JSON.parse(text) as Message;
    } catch (err) {
      this.#opts.onError(err);
      return;
    }
    if (message.origin === this.origin || this.#listeners.size === 0 || this.#closed) return;
    this.#queue.push(message);
    void this.#drain();
  }

  /** Delivers queued messages in order; the entries of a batch's puts are fetched in one pipeline. */
  async #drain(): Promise<void> {
    if (this.#draining) return;
    this.#draining = true;
    try {
      while (this.#queue.length > 0 && !this.#closed) {
        const batch = this.#queue.splice(0);
        const putIds = [...new Set(batch.flatMap((m) => (m.kind === 'put' ? [m.id] : [])))];
        let entries = new Map<string, SemanticEntry>();
        if (putIds.length > 0) {
          try {
            entries = await this.#opts.fetch(putIds);
          } catch (err) {
            this.#opts.onError(err); // those puts are lost to this process; get() on hit, or a resync, recovers
          }
        }
        for (const m of batch) {
          let change: SemanticChange | undefined;
          if (m.kind === 'put') {
            const entry = entries.get(m.id);
            if (entry) change = { kind: 'put', entry };
          } else if (m.kind === 'delete') change = { kind: 'delete', ids: m.ids };
          else if (m.kind === 'threshold') change = { kind: 'threshold', id: m.id, threshold: m.threshold };
          else if (m.kind === 'invalidate') change = { kind: 'invalidate', filter: m.filter };
          if (change) this.#deliver(change);
        }
      }
    } finally {
      this.#draining = false;
    }
  }

  #deliver(change: SemanticChange): void {
    for (const listener of this.#listeners) {
      try {
        listener(change);
      } catch (err) {
        this.#opts.onError(err);
      }
    }
  }
}
