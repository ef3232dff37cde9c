import type { BreakerConfig } from '../config/schema.js';

export type BreakerState = 'closed' | 'open' | 'half-open';

/**
 * A per-deployment circuit breaker. Pure state machine: time comes from the injected `now`, no
 * timers are set; the open -> half-open transition is applied lazily whenever the breaker is
 * asked (tryAcquire, state, retryInMs).
 *
 *   closed --(failureThreshold consecutive failures)--> open
 *   open --(cooldownMs elapsed)--> half-open
 *   half-open --(successesToClose probe successes)--> closed
 *   half-open --(any probe failure)--> open (fresh cooldown)
 *
 * Usage: call {@link tryAcquire} before an attempt; if it returned true, end the attempt with
 * exactly one of {@link onSuccess}, {@link onFailure} (the deployment misbehaved: 5xx, timeout,
 * connection error) or {@link release} (neither: the client went away, or a 4xx that says
 * nothing about the deployment's health).
 *
 * Permits are not tokens, so an outcome cannot be tied to the state it was acquired in. Outcomes
 * reported while open are ignored (they come from attempts started before the breaker opened),
 * and so are outcomes reported while half-open with no probe in flight.
 *
 * One tenant cannot open it for everyone: outcomes name their caller (the tenant), and once two
 * or more tenants have called the deployment since the breaker last closed, a streak of failures
 * opens it only when it holds failures of at least two tenants. A tenant whose own requests time
 * out (a huge max_tokens on a slow model) then fails alone; a real outage fails everyone's. With
 * a single caller (or none named) the plain threshold applies.
 */
export class CircuitBreaker {
  /** Called after every transition; must not throw. */
  onStateChange?: (from: BreakerState, to: BreakerState) => void;

  private current: BreakerState = 'closed';
  private consecutiveFailures = 0;
  private openedAt = 0;
  private probesInFlight = 0;
  private probeSuccesses = 0;
  /** Callers seen since the breaker last closed (only "one" or "several" matters: at most 2 kept). */
  private readonly callers = new Set<string>();
  /** Callers with a failure in the current streak (at most 2 kept). */
  private readonly failingCallers = new Set<string>();

  constructor(
    private readonly cfg: BreakerConfig,
    private readonly now: () => number = Date.now,
  ) {}

  /** The current state, after applying an elapsed cooldown (open -> half-open). Consumes no probe. */
  get state(): BreakerState {
    this.applyCooldown();
    return this.current;
  }

  /** Whether an attempt may go to this deployment now. In half-open, a true takes a probe slot. */
  tryAcquire(): boolean {
    this.applyCooldown();
    switch (this.current) {
      case 'closed':
        return true;
      case 'open':
        return false;
      case 'half-open':
        if (this.probesInFlight >= this.cfg.halfOpenMaxProbes) return false;
        this.probesInFlight++;
        return true;
    }
  }

  /** The attempt succeeded (`caller`: the tenant it was made for). */
  onSuccess(caller?: string): void {
    this.applyCooldown();
    this.note(caller);
    if (this.current === 'closed') {
      this.consecutiveFailures = 0;
      this.failingCallers.clear();
    } else if (this.current === 'half-open' && this.probesInFlight > 0) {
      this.probesInFlight--;
      this.probeSuccesses++;
      if (this.probeSuccesses >= this.cfg.successesToClose) this.transition('closed');
    }
  }

  /** The attempt failed in a way that says the deployment is unhealthy (`caller`: the tenant it was made for). */
  onFailure(caller?: string): void {
    this.applyCooldown();
    this.note(caller);
    if (this.current === 'closed') {
      this.consecutiveFailures++;
      if (this.failingCallers.size < 2) this.failingCallers.add(caller ?? '');
      const oneCaller = this.callers.size <= 1;
      if (this.consecutiveFailures >= this.cfg.failureThreshold && (oneCaller || this.failingCallers.size >= 2)) this.transition('open');
    } else if (this.current === 'half-open' && this.probesInFlight > 0) {
      this.transition('open');
    }
  }

  private note(caller: string | undefined): void {
    if (this.callers.size < 2) this.callers.add(caller ?? '');
  }

  /** The attempt ended in neither success nor failure: frees a half-open probe slot, nothing else. */
  release(): void {
    this.applyCooldown();
    if (this.current === 'half-open' && this.probesInFlight > 0) this.probesInFlight--;
  }

  /** Milliseconds until an open breaker lets probes through; 0 when not open. */
  retryInMs(): number {
    this.applyCooldown();
    if (this.current !== 'open') return 0;
    return Math.max(0, this.openedAt + this.cfg.cooldownMs - this.now());
  }

  private applyCooldown(): void {
    if (this.current === 'open' && this.now() - this.openedAt >= this.cfg.cooldownMs) {
      this.transition('half-open');
    }
  }

  private transition(to: BreakerState): void {
    const from = this.current;
    this.current = to;
    this.consecutiveFailures = 0;
    this.probesInFlight = 0;
    this.probeSuccesses = 0;
    this.failingCallers.clear();
    if (to === 'closed') this.callers.clear();
    if (to === 'open') this.openedAt = this.now();
    this.onStateChange?.(from, to);
  }
}

/** One {@link CircuitBreaker} per deployment id, created on first use with a shared config. */
export class BreakerRegistry {
  /** Called after any breaker's transition; must not throw. */
  onStateChange?: (deploymentId: string, from: BreakerState, to: BreakerState) => void;

  private readonly breakers = new Map<string, CircuitBreaker>();
  private readonly rateLimited = new Map<string, number>();

  constructor(
    private readonly cfg: BreakerConfig,
    private readonly now: () => number = Date.now,
    onStateChange?: (deploymentId: string, from: BreakerState, to: BreakerState) => void,
  ) {
    this.onStateChange = onStateChange;
  }

  get(deploymentId: string): CircuitBreaker {
    let breaker = this.breakers.get(deploymentId);
    if (breaker === undefined) {
      breaker = new CircuitBreaker(this.cfg, this.now);
      // Looked up at call time, so a listener set after the breaker was created still hears it.
      breaker.onStateChange = (from, to) => this.onStateChange?.(deploymentId, from, to);
      this.breakers.set(deploymentId, breaker);
    }
    return breaker;
  }

  /**
   * A deployment's provider said "too many requests" (429) and when to come back (Retry-After):
   * routing treats it as unavailable until then (a tiered route moves on to another tier),
   * without opening its breaker.
   */
  markRateLimited(deploymentId: string, retryAfterMs: number): void {
    const until = this.now() + retryAfterMs;
    if ((this.rateLimited.get(deploymentId) ?? 0) < until) this.rateLimited.set(deploymentId, until);
  }

  /** Whether the deployment is inside a Retry-After window of its provider. */
  isRateLimited(deploymentId: string): boolean {
    const until = this.rateLimited.get(deploymentId);
    if (until === undefined) return false;
    if (until > this.now()) return true;
    this.rateLimited.delete(deploymentId);
    return false;
  }

  /** The state of every breaker created so far (deployments never used are absent: closed). */
  states(): Record<string, BreakerState> {
    const out: Record<string, BreakerState> = {};
    for (const [id, breaker] of this.breakers) out[id] = breaker.state;
    return out;
  }
}
