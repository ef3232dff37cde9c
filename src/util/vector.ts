/**
 * Plain vector arithmetic on Float32Array embeddings: the dot product (the cosine similarity of
 * unit vectors) and the Euclidean norm.
 */

/** The dot product of two vectors of the same length. */
export function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

/** The Euclidean (L2) norm of a vector. */
export function norm(v: Float32Array): number {
  return Math.sqrt(dot(v, v));
}
