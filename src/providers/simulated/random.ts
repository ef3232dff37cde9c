/**
 * Small, fast, seedable randomness for the simulator. Not cryptographic: the point is that the
 * same model + seed + prompt always produces the same answer, on every machine.
 */
import { fmix32, fnv1a } from '../../util/hash.js';

/** mulberry32: a tiny PRNG with a 32-bit state; returns floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A PRNG seeded from the given parts (joined with a separator no part is likely to contain). */
export function seededRandom(...parts: Array<string | number | null | undefined>): () => number {
  const key = parts.map((p) => (p === null || p === undefined ? '\u0000' : String(p))).join('\u0001');
  return mulberry32(fmix32(fnv1a(key)));
}

/** An integer in [min, max] (inclusive). */
export function randomInt(random: () => number, min: number, max: number): number {
  if (max <= min) return min;
  return min + Math.floor(random() * (max - min + 1));
}

/** A standard normal deviate (Box-Muller). */
export function standardNormal(random: () => number): number {
  // 1 - random() is in (0, 1], so the log is finite.
  const u = 1 - random();
  const v = random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/**
 * A sample of a log-normal distribution given by its median and 95th percentile
 * (sigma = ln(p95 / median) / 1.645). A median of 0 always gives 0, without drawing.
 */
export function sampleLogNormal(random: () => number, median: number, p95: number): number {
  if (median <= 0) return 0;
  if (p95 <= median) return median;
  const sigma = Math.log(p95 / median) / 1.645;
  return median * Math.exp(sigma * standardNormal(random));
}

/** `digits` lowercase hex digits drawn from `random`. */
export function randomHex(random: () => number, digits: number): string {
  let out = '';
  while (out.length < digits) out += Math.floor(random() * 0x100000000).toString(16).padStart(8, '0');
  return out.slice(0, digits);
}
