/**
 * An in-memory snapshot of something kept in a store, reloaded every `refreshMs` and on demand
 * (a change-bus message). Used by the kill switches and the feature flags (both extend
 * {@link PolledService}): the hot path reads `current` with no I/O.
 *
 * - Reloads are numbered: an older read finishing late never replaces a newer snapshot.
 * - A slow store does not pile reads up: a tick is skipped while one is in progress.
 * - A failing store keeps the last snapshot; the failure is logged once, and so is the recovery.
 */
export interface PolledSnapshotOptions<T, S> {
  /** Reads the store. */
  load: () => Promise<T>;
  /** Builds the snapshot from what `load` returned. */
  build: (loaded: T) => S;
  refreshMs: number;
  /** What it is, for logs ("kill switches", "feature flags"). */
  what: string;
  log?: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void } | undefined;
  /**
   * Logs `<what> changed` (info) after a reload whose `signature` differs from the last one's,
   * with `fields` of the new snapshot.
   */
  logChanges?: { signature: (snapshot: S) => string; fields: (snapshot: S) => object };
}

export class PolledSnapshot<T, S> {
  #current: S;
  #timer: NodeJS.Timeout | undefined;
  #started = 0;
  #applied = 0;
  #ticking = false;
  #failing = false;

  constructor(
    private readonly opts: PolledSnapshotOptions<T, S>,
    initial: S,
  ) {
    this.#current = initial;
  }

  get current(): S {
    return this.#current;
  }

  /** Loads, then keeps reloading every `refreshMs` until {@link stop}. */
  async start(): Promise<void> {
    await this.refresh();
    if (this.#timer) return;
    this.#timer = setInterval(() => this.#tick(), this.opts.refreshMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Reloads now. */
  async refresh(): Promise<void> {
    const seq = ++this.#started;
    const loaded = await this.opts.load();
    if (seq <= this.#applied) return;
    this.#applied = seq;
    const before = this.#current;
    this.#current = this.opts.build(loaded);
    const changes = this.opts.logChanges;
    if (changes && this.opts.log && changes.signature(before) !== changes.signature(this.#current)) {
      this.opts.log.info(changes.fields(this.#current), `${this.opts.what} changed`);
    }
  }

  #tick(): void {
    if (this.#ticking) return;
    this.#ticking = true;
    this.refresh()
      .then(() => {
        if (this.#failing) this.opts.log?.info({}, `${this.opts.what} reloaded again`);
        this.#failing = false;
      })
      .catch((err: unknown) => {
        if (!this.#failing) this.opts.log?.warn({ err }, `could not reload ${this.opts.what}; keeping the last ones`);
        this.#failing = true;
      })
      .finally(() => {
        this.#ticking = false;
      });
  }
}

/**
 * A service whose hot path reads a {@link PolledSnapshot}: `start`, `stop` and `refresh`, and the
 * reload after a change made through it, which first tells the other processes (`onChange`, a
 * change-bus message) so that they reload too.
 */
export abstract class PolledService<T, S> {
  readonly #polled: PolledSnapshot<T, S>;
  readonly #opts: PolledSnapshotOptions<T, S> & { onChange?: (() => void) | undefined };

  protected constructor(opts: PolledSnapshotOptions<T, S> & { onChange?: (() => void) | undefined }, initial: S) {
    this.#opts = opts;
    this.#polled = new PolledSnapshot(opts, initial);
  }

  /** The snapshot in force in this process. */
  protected get snapshot(): S {
    return this.#polled.current;
  }

  /** Loads, then keeps reloading every `refreshMs` until {@link stop}. */
  start(): Promise<void> {
    return this.#polled.start();
  }

  stop(): void {
    this.#polled.stop();
  }

  /** Reloads the snapshot from the store now. */
  refresh(): Promise<void> {
    return this.#polled.refresh();
  }

  /** After a change stored through this service: tells the other processes, then reloads here. */
  protected async refreshAfterChange(): Promise<void> {
    this.#opts.onChange?.();
    try {
      await this.refresh();
    } catch (err) {
      // The change is stored; the next tick picks it up.
      this.#opts.log?.warn({ err }, `could not reload ${this.#opts.what} after a change`);
    }
  }
}
