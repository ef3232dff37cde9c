/**
 * Wraps an async generator so that `release` runs exactly once when iteration ends for any reason:
 * done, thrown, or stopped by the consumer (break / return()), including a return() before the
 * first next(), which a bare async generator silently ignores (its finally never runs).
 */
export function cancellable<T>(
  source: AsyncGenerator<T, void, undefined>,
  release: () => void,
): AsyncIterableIterator<T> {
  let released = false;
  const releaseOnce = (): void => {
    if (released) return;
    released = true;
    release();
  };
  const iterator: AsyncIterableIterator<T> = {
    async next(): Promise<IteratorResult<T>> {
      try {
        const r = await source.next();
        if (r.done) releaseOnce();
        return r;
      } catch (err) {
        releaseOnce();
        throw err;
      }
    },
    async return(): Promise<IteratorResult<T>> {
      // Release first: if a next() is pending on the network, this is what unblocks it.
      releaseOnce();
      await source.return(undefined).catch(() => undefined);
      return { done: true, value: undefined };
    },
    async throw(err?: unknown): Promise<IteratorResult<T>> {
      releaseOnce();
      await source.return(undefined).catch(() => undefined);
      throw err;
    },
    [Symbol.asyncIterator]() {
      return iterator;
    },
  };
  return iterator;
}
