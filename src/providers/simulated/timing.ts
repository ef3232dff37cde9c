/**
 * Abortable waits. A wait of 0 ms resolves without creating a timer, so a simulator configured
 * with zero latency adds no timers at all (the benchmarks rely on this).
 */

/** The signals a wait listens to: the first one that aborts rejects the wait with its reason. */
type Signals = readonly (AbortSignal | undefined)[];

function firstAborted(signals: Signals): AbortSignal | undefined {
  for (const s of signals) if (s?.aborted) return s;
  return undefined;
}

function onAnyAbort(signals: Signals, listener: (reason: unknown) => void): () => void {
  const handlers: Array<[AbortSignal, () => void]> = [];
  for (const s of signals) {
    if (!s) continue;
    const h = () => listener(s.reason);
    s.addEventListener('abort', h, { once: true });
    handlers.push([s, h]);
  }
  return () => {
    for (const [s, h] of handlers) s.removeEventListener('abort', h);
  };
}

/** Resolves after `ms`; rejects with the abort reason as soon as one of `signals` aborts. */
export function delay(ms: number, ...signals: Signals): Promise<void> {
  const aborted = firstAborted(signals);
  if (aborted) return Promise.reject(aborted.reason);
  if (!(ms > 0)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      resolve();
    }, ms);
    const off = onAnyAbort(signals, (reason) => {
      clearTimeout(timer);
      off();
      reject(reason);
    });
  });
}

/** Never resolves; rejects with the abort reason when one of `signals` aborts. */
export function untilAborted(...signals: Signals): Promise<never> {
  const aborted = firstAborted(signals);
  if (aborted) return Promise.reject(aborted.reason);
  return new Promise((_, reject) => {
    const off = onAnyAbort(signals, (reason) => {
      off();
      reject(reason);
    });
  });
}
