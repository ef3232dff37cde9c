/**
 * Small, fast, non-cryptographic 32-bit hashing shared by the built-in embedder's feature hashing
 * (src/cache/embedders/builtin.ts), prompt fingerprints (src/observability/prompt-features.ts) and
 * the simulator's seeded randomness (src/providers/simulated/random.ts).
 */

/** 32-bit FNV-1a offset basis: the default seed of {@link fnv1a}. */
export const FNV_OFFSET = 0x811c9dc5;
/** 32-bit FNV prime. */
export const FNV_PRIME = 0x01000193;

/** 32-bit FNV-1a hash of a string (UTF-16 code units), unsigned. */
export function fnv1a(text: string, seed = FNV_OFFSET): number {
  let h = seed >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, FNV_PRIME);
  }
  return h >>> 0;
}

/** MurmurHash3's 32-bit finalizer, unsigned: spreads FNV's weak bits so near-identical inputs diverge. */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
