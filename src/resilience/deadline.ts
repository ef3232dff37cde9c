import { UpstreamError } from '../providers/types.js';

/** The longest delay setTimeout honours; a longer one fires after 1 ms. */
const MAX_TIMER_MS = 2_147_483_647;

interface Timer {
  clear(): void;
}

/**
 * setTimeout, unref'd (a pending deadline must not keep the process alive), that also works for
 * delays beyond setTimeout's 24.8-day limit and treats an infinite delay as "never".
 */
function startTimer(ms: number, fn: () => void): Timer {
  let handle: NodeJS.Timeout | undefined;
  const arm = (left: number): void => {
    if (left === Infinity) return;
    const step = Math.min(Math.max(0, left), MAX_TIMER_MS);
    handle = setTimeout(() => {
      handle = undefined;
      if (left > step) arm(left - step);
      else fn();
    }, step);
    handle.unref();
  };
  arm(ms);
  return {
    clear() {
      if (handle !== undefined) clearTimeout(handle);
      handle = undefined;
    },
  };
}

/**
 * A timer scoped to one upstream attempt, derived from a {@link Deadline}. Its `signal` aborts when
 * the attempt's own timer fires or when the deadline's signal aborts (carrying that reason).
 */
export interface Attempt {
  readonly signal: AbortSignal;
  /**
   * Restarts the timer: the signal now aborts `ms` from now (capped by the deadline) unless
   * rearmed again. Used as an idle timer between stream chunks. No-op once aborted or disposed.
   */
  rearm(ms: number): void;
  /** Clears the timer and the listener on the deadline's signal. Does not abort the signal. */
  dispose(): void;
}

/**
 * The time budget of one gateway request, all attempts and waits included. `signal` aborts when
 * the budget runs out (reason: an UpstreamError of kind `timeout`) or when `parent` aborts (the
 * client went away; reason: the parent's reason). Call {@link dispose} when the request ends.
 */
export class Deadline {
  readonly signal: AbortSignal;

  private readonly controller = new AbortController();
  private readonly expiresAt: number;
  private readonly timer: Timer | undefined;
  private readonly attempts = new Set<Attempt>();
  private readonly onParentAbort: (() => void) | undefined;

  constructor(
    private readonly totalMs: number,
    private readonly parent?: AbortSignal,
    private readonly now: () => number = Date.now,
  ) {
    this.signal = this.controller.signal;
    this.expiresAt = now() + totalMs;
    if (parent?.aborted) {
      this.controller.abort(parent.reason);
      return;
    }
    if (!(totalMs > 0)) {
      this.expire();
      return;
    }
    if (parent !== undefined) {
      const onParentAbort = (): void => this.abort(parent.reason);
      this.onParentAbort = onParentAbort;
      parent.addEventListener('abort', onParentAbort, { once: true });
    }
    this.timer = startTimer(totalMs, () => this.expire());
  }

  /** Milliseconds left, never negative. */
  remainingMs(): number {
    return Math.max(0, this.expiresAt - this.now());
  }

  /** Whether the time budget is used up (a parent abort alone does not count). */
  expired(): boolean {
    return this.remainingMs() <= 0;
  }

  /**
   * A signal for one attempt, aborting after `min(timeoutMs, remainingMs())`. When the deadline is
   * the tighter of the two, the signal carries the deadline's reason, not an attempt timeout.
   */
  attempt(timeoutMs: number): Attempt {
    const controller = new AbortController();
    let timer: Timer | undefined;
    let done = false;

    const cleanup = (): void => {
      done = true;
      timer?.clear();
      timer = undefined;
      this.signal.removeEventListener('abort', onDeadlineAbort);
      this.attempts.delete(attempt);
    };
    const onDeadlineAbort = (): void => {
      cleanup();
      controller.abort(this.signal.reason);
    };
    const arm = (ms: number): void => {
      if (done) return;
      timer?.clear();
      const remaining = this.remainingMs();
      if (ms >= remaining) {
        // The deadline comes first: let it fire (idempotent if its own timer already did).
        if (remaining <= 0) this.expire();
        else timer = startTimer(remaining, () => this.expire());
        return;
      }
      timer = startTimer(ms, () => {
        cleanup();
        controller.abort(new UpstreamError('timeout', `attempt timed out after ${ms}ms`));
      });
    };

    const attempt: Attempt = { signal: controller.signal, rearm: arm, dispose: cleanup };
    if (this.signal.aborted) {
      done = true;
      controller.abort(this.signal.reason);
      return attempt;
    }
    this.attempts.add(attempt);
    this.signal.addEventListener('abort', onDeadlineAbort, { once: true });
    arm(timeoutMs);
    return attempt;
  }

  /** Clears the deadline's timer, its listener on `parent`, and every attempt not yet disposed. */
  dispose(): void {
    this.timer?.clear();
    if (this.onParentAbort !== undefined) this.parent?.removeEventListener('abort', this.onParentAbort);
    for (const attempt of [...this.attempts]) attempt.dispose();
  }

  private expire(): void {
    this.abort(new UpstreamError('timeout', `request deadline of ${this.totalMs}ms exceeded`));
  }

  private abort(reason: unknown): void {
    if (this.signal.aborted) return;
    this.timer?.clear();
    if (this.onParentAbort !== undefined) this.parent?.removeEventListener('abort', this.onParentAbort);
    this.controller.abort(reason);
  }
}
