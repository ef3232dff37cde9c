/**
 * Sticky bucketing for percentage rollouts and experiments: a stable point in [0, 100) for a
 * (name, id) pair. The same user always lands on the same point for a flag or experiment, so
 * raising a rollout from 5% to 25% keeps everyone who was inside (point < 5 implies point < 25),
 * and different flags bucket independently (the name is part of the hash).
 */
import { createHash } from 'node:crypto';

/** A point in [0, 100) with 1e-4 resolution, from sha256(name, id). */
export function bucketPoint(name: string, id: string): number {
  const digest = createHash('sha256').update(name).update('\0').update(id).digest();
  return (digest.readUInt32BE(0) % 1_000_000) / 10_000;
}

/** Whether `id` falls inside a `percentage` (0-100) rollout of `name`. */
export function inRollout(name: string, id: string, percentage: number): boolean {
  if (percentage >= 100) return true;
  if (percentage <= 0) return false;
  return bucketPoint(name, id) < percentage;
}

/** Picks a variant by weight, sticky per id: the index into `weights`. */
export function pickWeighted(name: string, id: string, weights: readonly number[]): number {
  const total = weights.reduce((a, w) => a + w, 0);
  const point = (bucketPoint(name, id) / 100) * total;
  let acc = 0;
  for (let i = 0; i < weights.length; i++) {
    acc += weights[i] as number;
    if (point < acc) return i;
  }
  return weights.length - 1;
}
