/**
 * A function's last results, by its string argument, at most `size` of them (the oldest is
 * dropped first): for pure analyses that a lookup repeats on the same few texts.
 */
export function boundedMemo<T>(fn: (text: string) => T, size: number): (text: string) => T {
  const memo = new Map<string, T>();
  return (text) => {
    let value = memo.get(text);
    if (value === undefined) {
      value = fn(text);
      if (memo.size >= size) memo.delete(memo.keys().next().value!);
      memo.set(text, value);
    }
    return value;
  };
}
