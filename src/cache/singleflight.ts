/**
 * Single flight: identical requests in flight at the same time share one upstream call. The first
 * (the leader) calls upstream; the others (followers) wait for its answer:
 * - a JSON answer is handed to every follower (a follower that asked to stream gets it replayed);
 * - a stream fans out: the flight reads upstream once and every subscriber (the leader's client
 *   included) gets every chunk from the first, at its own pace; a follower that asked for JSON
 *   gets the stream assembled into a completion at its end;
 * - a failure reaches every waiter.
 * Upstream is aborted only when every participant's client has gone away. Keys are exact cache
 * keys (tenant first), so flights never cross tenants. In process: processes do not share flights.
 */
import type { ChatCompletion, ChatCompletionChunk } from '../providers/types.js';
import { StreamAssembler } from './answer.js';

export type FlightShare =
  | { kind: 'json'; body: ChatCompletion }
  | { kind: 'stream'; first: ChatCompletionChunk; rest: AsyncIterator<ChatCompletionChunk> };

/** The upstream stream the leader got from invoke. */
export interface UpstreamStream {
  first: ChatCompletionChunk;
  rest: AsyncIterator<ChatCompletionChunk>;
  idle: { rearm(ms?: number): void; dispose(): void };
}

type State = 'waiting' | 'streaming' | 'done' | 'failed';

export class Flight {
  private readonly controller = new AbortController();
  private participants = 0;
  private state: State = 'waiting';
  private body: ChatCompletion | undefined;
  private error: unknown;
  /** Every chunk so far (a subscriber joining late starts from the first). */
  readonly chunks: ChatCompletionChunk[] = [];
  private readonly subscribers = new Set<FlightSubscriber>();
  private waiters: Array<() => void> = [];
  /** Followers that joined (metrics, tests). */
  followers = 0;
  /** Called once with the complete answer (stored in the cache by the leader's stage). */
  onComplete: ((body: ChatCompletion) => void) | undefined;

  constructor(
    readonly key: string,
    private readonly onSettled: (flight: Flight) => void,
  ) {}

  /** The signal of the upstream call: aborted when every participant's client has gone. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  get settled(): boolean {
    return this.state === 'done' || this.state === 'failed';
  }

  /** Counts a participant until it calls the function returned (it has its answer) or its client goes away. */
  attach(client: AbortSignal): () => void {
    this.participants++;
    let left = false;
    const leave = () => {
      if (left) return;
      left = true;
      client.removeEventListener('abort', leave);
      if (--this.participants === 0 && !this.settled) this.controller.abort(new Error('every client of the shared request went away'));
    };
    if (client.aborted) queueMicrotask(leave);
    else client.addEventListener('abort', leave, { once: true });
    return leave;
  }

  /** The leader's JSON answer. */
  resolve(body: ChatCompletion): void {
    if (this.settled) return;
    this.body = body;
    this.finish('done');
    this.onComplete?.(body);
  }

  /** The leader failed before any answer: every waiter gets `err`. */
  fail(err: unknown): void {
    if (this.settled) return;
    if (this.state === 'streaming') return; // the pump reports stream failures itself
    this.error = err;
    this.finish('failed');
  }

  /** The leader got a stream: the flight reads it from now on; returns the leader's own subscription. */
  stream(up: UpstreamStream): FlightShare & { kind: 'stream' } {
    this.state = 'streaming';
    this.chunks.push(up.first);
    this.wakeWaiters();
    void this.pump(up);
    return this.subscribe();
  }

  /** A follower: waits for the leader's answer in the form the follower asked for. */
  async share(wantStream: boolean, client: AbortSignal): Promise<FlightShare> {
    this.followers++;
    const leave = this.attach(client);
    try {
      while (this.state === 'waiting' || (this.state === 'streaming' && !wantStream)) {
        if (client.aborted) throw client.reason ?? new Error('client went away');
        await new Promise<void>((resolve) => {
          const onAbort = () => resolve();
          client.addEventListener('abort', onAbort, { once: true });
          this.waiters.push(() => {
            client.removeEventListener('abort', onAbort);
            resolve();
          });
        });
      }
      if (this.state === 'failed') throw this.error;
      if (this.state === 'done') return { kind: 'json', body: this.body as ChatCompletion };
      return this.subscribe();
    } finally {
      leave(); // a subscription counts itself
    }
  }

  private subscribe(): FlightShare & { kind: 'stream' } {
    const sub = new FlightSubscriber(this, this.attach(new AbortController().signal));
    this.subscribers.add(sub);
    return { kind: 'stream', first: { ...(this.chunks[0] as ChatCompletionChunk) }, rest: sub };
  }

  /** @internal */
  unsubscribe(sub: FlightSubscriber): void {
    this.subscribers.delete(sub);
  }

  /** @internal */
  get status(): { state: State; error: unknown } {
    return { state: this.state, error: this.error };
  }

  private async pump(up: UpstreamStream): Promise<void> {
    const assembler = new StreamAssembler();
    assembler.add(up.first);
    try {
      for (;;) {
        up.idle.rearm();
        const next = await up.rest.next();
        if (next.done) break;
        this.chunks.push(next.value);
        assembler.add(next.value);
        for (const s of this.subscribers) s.wake();
      }
      this.body = assembler.result();
      this.finish('done');
      this.onComplete?.(this.body);
    } catch (err) {
      this.error = err;
      this.finish('failed');
    } finally {
      up.idle.dispose();
      void up.rest.return?.(undefined);
    }
  }

  private finish(state: State): void {
    this.state = state;
    this.wakeWaiters();
    for (const s of this.subscribers) s.wake();
    this.onSettled(this);
  }

  private wakeWaiters(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}

/** One client's view of a shared stream: every chunk from the second on (the first is given apart). */
class FlightSubscriber implements AsyncIterator<ChatCompletionChunk> {
  private pos = 1;
  private closed = false;
  private waiter: (() => void) | undefined;

  constructor(
    private readonly flight: Flight,
    private readonly leave: () => void,
  ) {}

  wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  async next(): Promise<IteratorResult<ChatCompletionChunk>> {
    for (;;) {
      if (this.closed) return { done: true, value: undefined };
      const chunks = this.flight.chunks;
      // A copy: the responder may strip a chunk's usage for its own client.
      if (this.pos < chunks.length) return { done: false, value: { ...(chunks[this.pos++] as ChatCompletionChunk) } };
      const { state, error } = this.flight.status;
      if (state === 'done') {
        this.close();
        return { done: true, value: undefined };
      }
      if (state === 'failed') {
        this.close();
        throw error;
      }
      await new Promise<void>((resolve) => (this.waiter = resolve));
    }
  }

  async return(): Promise<IteratorResult<ChatCompletionChunk>> {
    this.close();
    return { done: true, value: undefined };
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    this.flight.unsubscribe(this);
    this.leave();
  }
}

/** The flights in progress, by key. */
export class SingleFlight {
  private readonly flights = new Map<string, Flight>();

  /** The flight in progress for `key`, if any. */
  get(key: string): Flight | undefined {
    return this.flights.get(key);
  }

  /** Starts a flight for `key` (the caller is its leader). */
  lead(key: string): Flight {
    const flight = new Flight(key, (f) => {
      if (this.flights.get(key) === f) this.flights.delete(key);
    });
    this.flights.set(key, flight);
    return flight;
  }

  /** A flight nobody can join (its answer is still assembled and stored): single flight off, or a refresh. */
  detached(key: string): Flight {
    return new Flight(key, () => {});
  }

  get size(): number {
    return this.flights.size;
  }
}
