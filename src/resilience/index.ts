export { backoffDelay, type BackoffOptions } from './backoff.js';
export { decideRetry, sleep, type RetryDecision } from './retry.js';
export { BreakerRegistry, CircuitBreaker, type BreakerState } from './circuit-breaker.js';
export { Deadline, type Attempt } from './deadline.js';
