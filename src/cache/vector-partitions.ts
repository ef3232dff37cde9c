/**
 * The vector storage of HnswVectorIndex (vector-index.ts), one partition per scope: each scope's
 * vectors are searched exactly in a flat array while it is small and through its own HNSW graph
 * once it is large. Which entries exist, and which are evicted, is the index's business; this file
 * only places, moves, searches and removes vectors.
 *
 * Design (measured on this machine: 2 shared, busy cores, hnswlib-node 3.0.0, Node 20; the
 * figures for whole index are from bench/lib/vector-index-bench.ts):
 *
 * - One partition per scope, never one shared index with a filter. hnswlib-node calls a JS
 *   function for every candidate the filter sees, and a selective filter makes HNSW walk about
 *   ef/selectivity nodes: a shared 20k×256 index with 200 scopes (1% selectivity) searched with
 *   a filter took p50 10 ms / p99 94 ms, with 20 scopes (5%) p50 3.4 ms, where per-scope
 *   partitions answer in ~0.2 ms even at 100k entries.
 * - Small scopes are searched exactly, by brute force over one Float32Array (rows swapped on
 *   removal, capacity grown ×1.5, halved when a quarter full). An hnswlib index costs a fixed
 *   ~2.5 MB however small it is (it allocates 65,536 std::mutex "label op locks", 40 B each:
 *   measured 2.52 MB RSS per empty index), so thousands of tenant×route scopes with a few entries
 *   each would cost GBs as graphs; flat, they cost their vectors plus ~300 B of bookkeeping
 *   (100k×256 in 5,000 scopes: ~1.36 KB per entry estimated, search p50 7 µs). Brute force
 *   (4-way unrolled dot) measured ~12 µs for 64×256, ~50 µs for 256×256, ~200 µs for 1024×256
 *   (~290 µs for 1024×384): the cost of an HNSW search at 100k. So a scope becomes a graph once
 *   it exceeds `flatLimit` (default 1024) entries — the fixed 2.5 MB is then at most ~2.5 KB per
 *   entry — and goes back to flat when it falls to `flatLimit / 2` (hysteresis: a transition
 *   costs O(flatLimit) and needs flatLimit / 2 adds or removes in between: amortized O(1)).
 * - Promotion does not stall the event loop: building a 1024-point graph at once takes 80–100 ms.
 *   Instead, new entries of a promoted scope go to the graph and every add also moves
 *   `MIGRATE_PER_ADD` (8) entries from the flat part into it (slowest add measured: 2 ms); a
 *   search meanwhile merges both parts.
 * - Graph defaults M 16, efConstruction 100, efSearch 64 (ef is max(efSearch, k)). One scope of
 *   100k×256 clustered vectors: build 36 s (~0.36 ms per add), search k=5 p50 ~0.28 ms / p99
 *   ~0.57 ms cold (0.19 / 0.31 ms warm), recall@1 1.0 (ef 32 already gave 0.997); 100k×384:
 *   p50 0.36 ms / p99 0.61 ms. M 24 cost +40% build and +35% search for no recall gain on such
 *   data; M 12 / efC 64 needed ef 96 for 0.98; efC 200 doubled build time for <0.01 recall.
 *   (Uniformly random data is the pathological case: 5k×64 random queries, recall@1 0.94 at
 *   ef 64, 0.99 at ef 128 — raise efSearch if your embeddings behave like that.)
 * - Labels: each graph numbers its slots 0..capacity; a removed entry is markDelete'd and its
 *   label goes on a free list; the next add re-adds that same label, which hnswlib treats as an
 *   update of the deleted point (unmark + updatePoint: the slot and its graph links are reused).
 *   We do NOT use hnswlib's `replaceDeleted`: it fills an arbitrary deleted slot and relabels it,
 *   so the caller cannot know which old label it dropped, and reusing freed labels with it
 *   corrupts hnswlib's label table. With our scheme a graph's capacity is bounded by its peak
 *   live count (rounded up to a power of two), whatever the churn. Capacity starts at 2×flatLimit
 *   and doubles with resizeIndex.
 * - Memory per entry in a 100k graph: ~1.85 KB estimated at 256 dims (1 KB of it the vector;
 *   RSS grew 162 MB), ~2.5 KB at 384 dims (RSS +211 MB). Graph memory is native and released
 *   when the dropped HierarchicalNSW wrapper is garbage collected — V8 does not know its size,
 *   so that can lag.
 */
import hnswlib from 'hnswlib-node';

const { HierarchicalNSW } = hnswlib;
type Graph = InstanceType<typeof HierarchicalNSW>;

export const DEFAULT_M = 16;
export const DEFAULT_EF_CONSTRUCTION = 100;
export const DEFAULT_EF_SEARCH = 64;
export const DEFAULT_FLAT_LIMIT = 1024;
/** Flat entries moved into a scope's new graph on each add to it. */
const MIGRATE_PER_ADD = 8;
const MIN_FLAT_ROWS = 4;
const RANDOM_SEED = 100;
/** hnswlib's fixed cost per index: MAX_LABEL_OPERATION_LOCKS (65536) × sizeof(std::mutex) (40). */
const GRAPH_FIXED_BYTES = 65_536 * 40 + 4_096;
const PARTITION_JS_BYTES = 300;

/** Where an entry's vector lives (the index's entries extend this). */
export interface Placed<E extends Placed<E>> {
  part: Partition<E>;
  /** Row in part.flat, or label in part.graph. */
  slot: number;
  inGraph: boolean;
}

interface GraphPart<E> {
  index: Graph;
  capacity: number;
  /** label -> entry (undefined: free). */
  labels: (E | undefined)[];
  free: number[];
  live: number;
}

export interface Partition<E> {
  scope: string;
  flat: Float32Array;
  /** row -> entry, length = number of flat rows in use. */
  rows: E[];
  graph: GraphPart<E> | undefined;
}

export interface Hit<E> {
  entry: E;
  similarity: number;
}

/** See HnswVectorIndexOptions (vector-index.ts); every field is set. */
export interface PartitionsOptions {
  dimensions: number;
  m: number;
  efConstruction: number;
  efSearch: number;
  flatLimit: number;
}

/** The dot product of `q` with the `d` values of `m` from offset `o` (4-way unrolled). */
function dot(m: Float32Array, o: number, q: Float32Array, d: number): number {
  let a = 0;
  let b = 0;
  let c = 0;
  let e = 0;
  let j = 0;
  for (; j + 3 < d; j += 4) {
    a += m[o + j]! * q[j]!;
    b += m[o + j + 1]! * q[j + 1]!;
    c += m[o + j + 2]! * q[j + 2]!;
    e += m[o + j + 3]! * q[j + 3]!;
  }
  for (; j < d; j++) a += m[o + j]! * q[j]!;
  return a + b + c + e;
}

function clampSimilarity(s: number): number {
  return s > 1 ? 1 : s < -1 ? -1 : s;
}

const bySimilarityDesc = <E>(x: Hit<E>, y: Hit<E>): number => y.similarity - x.similarity;

export class ScopePartitions<E extends Placed<E>> {
  private readonly dimensions: number;
  private readonly scopes = new Map<string, Partition<E>>();
  /** Reused to pass vectors to hnswlib (it only accepts plain arrays). */
  private readonly scratch: number[];

  constructor(private readonly opts: PartitionsOptions) {
    this.dimensions = opts.dimensions;
    this.scratch = new Array<number>(this.dimensions).fill(0);
  }

  /** Scopes holding at least one entry. */
  get size(): number {
    return this.scopes.size;
  }

  /** The k nearest entries of `scope` to `vector`, most similar first. */
  search(scope: string, vector: Float32Array, k: number): Hit<E>[] {
    const part = this.scopes.get(scope);
    if (!part) return [];
    let hits: Hit<E>[];
    const g = part.graph;
    if (g && g.live > 0) {
      hits = this.searchGraph(g, vector, k);
      if (part.rows.length > 0) {
        hits = hits.concat(this.searchFlat(part, vector, k));
        hits.sort(bySimilarityDesc);
        if (hits.length > k) hits.length = k;
      }
    } else {
      hits = this.searchFlat(part, vector, k);
    }
    return hits;
  }

  clear(): void {
    this.scopes.clear();
  }

  /** Scopes, graphs and estimated bytes held (vectors, graphs incl. hnswlib's fixed per-index cost, partitions' bookkeeping). */
  stats(): { scopes: number; graphScopes: number; graphCapacity: number; bytes: number } {
    const d = this.dimensions;
    let bytes = 0;
    let graphScopes = 0;
    let graphCapacity = 0;
    // Per graph slot: vector + level-0 links (2M ids + count) + label, link-list mutex, visited
    // mark, level, upper-level pointer, label-table node; plus upper levels (1/(M-1) levels each).
    const perSlot = d * 4 + (2 * this.opts.m * 4 + 4) + 8 + 40 + 2 + 4 + 8 + 40 + (this.opts.m * 4 + 4 + 16) / (this.opts.m - 1 || 1);
    for (const part of this.scopes.values()) {
      bytes += PARTITION_JS_BYTES + part.scope.length + part.flat.byteLength + part.rows.length * 8;
      const g = part.graph;
      if (g) {
        graphScopes++;
        graphCapacity += g.capacity;
        bytes += GRAPH_FIXED_BYTES + g.capacity * perSlot + g.labels.length * 8 + g.free.length * 8;
      }
    }
    return { scopes: this.scopes.size, graphScopes, graphCapacity, bytes };
  }

  /** The partition of `scope`, created empty when it has none. */
  partition(scope: string): Partition<E> {
    let part = this.scopes.get(scope);
    if (!part) {
      part = { scope, flat: new Float32Array(MIN_FLAT_ROWS * this.dimensions), rows: [], graph: undefined };
      this.scopes.set(scope, part);
    }
    return part;
  }

  /** Places an entry's vector in `part`: its flat rows while the scope is small, else its graph. */
  insert(part: Partition<E>, entry: E, vector: Float32Array): void {
    entry.part = part;
    if (!part.graph && part.rows.length < this.opts.flatLimit) {
      this.flatAdd(part, entry, vector);
      return;
    }
    const g = part.graph ?? (part.graph = this.newGraph());
    this.graphAdd(g, entry, vector);
    // Move a few flat entries into the graph (amortized promotion), last rows first: no copying.
    for (let i = 0; i < MIGRATE_PER_ADD && part.rows.length > 0; i++) {
      const row = part.rows.length - 1;
      const e = part.rows[row]!;
      const d = this.dimensions;
      this.graphAdd(g, e, part.flat.subarray(row * d, row * d + d));
      this.flatRemove(part, row);
    }
  }

  /** Replaces the vector of an entry placed in its partition already. */
  overwrite(entry: E, vector: Float32Array): void {
    const part = entry.part;
    if (entry.inGraph) {
      part.graph!.index.addPoint(this.toArray(vector), entry.slot); // same live label: an update
    } else {
      part.flat.set(vector, entry.slot * this.dimensions);
    }
  }

  /** Takes the entry out of its partition; drops the partition once empty, or demotes its graph once small. */
  detach(entry: E): void {
    const part = entry.part;
    const g = part.graph;
    if (entry.inGraph) {
      g!.index.markDelete(entry.slot);
      g!.labels[entry.slot] = undefined;
      g!.free.push(entry.slot);
      g!.live--;
    } else {
      this.flatRemove(part, entry.slot);
    }
    entry.slot = -1;
    const total = part.rows.length + (g ? g.live : 0);
    if (total === 0) {
      if (this.scopes.get(part.scope) === part) this.scopes.delete(part.scope);
    } else if (g && total <= this.opts.flatLimit >> 1) {
      this.demote(part, g);
    }
  }

  /* Flat part ------------------------------------------------------------------------------ */

  private flatAdd(part: Partition<E>, entry: E, vector: Float32Array): void {
    const d = this.dimensions;
    const row = part.rows.length;
    if ((row + 1) * d > part.flat.length) {
      const grown = new Float32Array(Math.max(MIN_FLAT_ROWS, Math.ceil((row + 1) * 1.5)) * d); // ×1.5: less slack
      grown.set(part.flat.subarray(0, row * d));
      part.flat = grown;
    }
    part.flat.set(vector, row * d);
    part.rows.push(entry);
    entry.slot = row;
    entry.inGraph = false;
  }

  /** Removes a flat row: the last row moves into its place. */
  private flatRemove(part: Partition<E>, row: number): void {
    const d = this.dimensions;
    const last = part.rows.length - 1;
    if (row !== last) {
      part.flat.copyWithin(row * d, last * d, last * d + d);
      const moved = part.rows[last]!;
      part.rows[row] = moved;
      moved.slot = row;
    }
    part.rows.pop();
    const capRows = part.flat.length / d;
    if (capRows > MIN_FLAT_ROWS && part.rows.length <= capRows >> 2) {
      part.flat = part.flat.slice(0, Math.max(MIN_FLAT_ROWS, capRows >> 1) * d);
    }
  }

  private searchFlat(part: Partition<E>, q: Float32Array, k: number): Hit<E>[] {
    const d = this.dimensions;
    const m = part.flat;
    const rows = part.rows;
    const n = rows.length;
    if (n === 0) return [];
    if (k >= n || k > 32) {
      const all: Hit<E>[] = new Array<Hit<E>>(n);
      for (let r = 0; r < n; r++) all[r] = { entry: rows[r]!, similarity: clampSimilarity(dot(m, r * d, q, d)) };
      all.sort(bySimilarityDesc);
      if (all.length > k) all.length = k;
      return all;
    }
    // Small k: keep the k best in a sorted buffer (insertion).
    const topS = new Float64Array(k).fill(-Infinity);
    const topR = new Int32Array(k);
    let len = 0;
    for (let r = 0; r < n; r++) {
      const s = dot(m, r * d, q, d);
      if (len === k && s <= topS[k - 1]!) continue;
      let i = len < k ? len++ : k - 1;
      while (i > 0 && topS[i - 1]! < s) {
        topS[i] = topS[i - 1]!;
        topR[i] = topR[i - 1]!;
        i--;
      }
      topS[i] = s;
      topR[i] = r;
    }
    const out: Hit<E>[] = new Array<Hit<E>>(len);
    for (let i = 0; i < len; i++) out[i] = { entry: rows[topR[i]!]!, similarity: clampSimilarity(topS[i]!) };
    return out;
  }

  /* Graph part ----------------------------------------------------------------------------- */

  private newGraph(): GraphPart<E> {
    const capacity = this.opts.flatLimit * 2;
    const index = new HierarchicalNSW('ip', this.dimensions);
    index.initIndex(capacity, this.opts.m, this.opts.efConstruction, RANDOM_SEED, false);
    index.setEf(this.opts.efSearch);
    return { index, capacity, labels: [], free: [], live: 0 };
  }

  private graphAdd(g: GraphPart<E>, entry: E, vector: Float32Array): void {
    let label = g.free.pop();
    if (label === undefined) {
      label = g.labels.length;
      if (label >= g.capacity) {
        g.capacity *= 2;
        g.index.resizeIndex(g.capacity);
      }
    }
    // A fresh label adds a point; a freed label (markDelete'd) is unmarked and updated in place.
    g.index.addPoint(this.toArray(vector), label);
    g.labels[label] = entry;
    g.live++;
    entry.slot = label;
    entry.inGraph = true;
  }

  private searchGraph(g: GraphPart<E>, q: Float32Array, k: number): Hit<E>[] {
    const res = g.index.searchKnn(this.toArray(q), Math.min(k, g.live));
    const out: Hit<E>[] = [];
    for (let i = 0; i < res.neighbors.length; i++) {
      const entry = g.labels[res.neighbors[i]!];
      if (entry) out.push({ entry, similarity: clampSimilarity(1 - res.distances[i]!) });
    }
    return out;
  }

  /** Moves a graph's live entries back to the flat part and drops the graph. */
  private demote(part: Partition<E>, g: GraphPart<E>): void {
    part.graph = undefined;
    const v = new Float32Array(this.dimensions);
    for (const e of g.labels) {
      if (!e) continue;
      const p = g.index.getPoint(e.slot);
      for (let i = 0; i < v.length; i++) v[i] = p[i]!;
      this.flatAdd(part, e, v);
    }
  }

  private toArray(v: Float32Array): number[] {
    const a = this.scratch;
    for (let i = 0; i < v.length; i++) a[i] = v[i]!;
    return a;
  }
}
