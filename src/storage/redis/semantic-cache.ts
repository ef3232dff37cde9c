/**
 * `SemanticStore` on Redis (distributed mode): entries shared by every gateway process, each of
 * which keeps its own in-process vector index in sync through pub/sub.
 *
 * Keys (`<p>` is the prefix, e.g. `tollgate:`):
 * - `<p>sc:e:<id>`  hash {scope, tenantId, route, embedder, question, vector (raw Float32Array
 *   bytes), answer, createdAt, expiresAt, threshold ('' = null)}; PEXPIRE'd at the entry's
 *   expiry (relative to the gateway's clock, so server clock skew does not matter).
 * - `<p>sc:idx`     sorted set, score createdAt, member id: scan order, and invalidation (ids are
 *   `<tenant>/<route>/<uuid>`, so a ZSCAN MATCH on the escaped literal prefix narrows it).
 * - `<p>sc:exp`     sorted set, score expiresAt, member id: members whose hash has expired are
 *   removed from both sets by `put` (at most every 10 s, 1,000 at a time), `purgeExpired` and
 *   lazily by `scan`.
 * - `<p>sc:t:<tenant>` sorted set, member id, score the order of last use within the tenant (the
 *   set's highest + 1 on a put, and on a get that finds the entry): fair shares. A put over
 *   `maxEntriesPerTenant` evicts the tenant's lowest, in the same script, and announces them as a
 *   delete. PEXPIRE'd to the longest TTL written into it (it outlives its entries, never leaks);
 *   members of expired entries are removed with them from the other sets.
 * - `<p>sc:changes` pub/sub channel: every change, announced in the same MULTI (or script) as
 *   the change itself (messages and their delivery: semantic-changes.ts).
 *
 * The Lua scripts are in semantic-scripts.ts.
 *
 * Like the counters, it targets a single Redis (or a Sentinel-managed primary), not Cluster.
 * The command client is the caller's (`ownsClient` to quit it on close); the subscriber
 * connection is the store's own and is closed by `close()`.
 */
import type { Redis } from 'ioredis';
import type { CacheFilter, SemanticChange, SemanticEntry, SemanticStore } from '../../cache/types.js';
import { matchesFilter, tenantOfKey } from '../memory/exact-cache.js';
import { bufferToVector, checkEntry, vectorToBuffer } from '../sqlite/semantic-cache.js';
import { type ScriptCall, defineScripts, exec, quit } from './commands.js';
import { filterGlob } from './exact-cache.js';
import { SemanticChangeFeed } from './semantic-changes.js';
import { SEMANTIC_SCRIPTS } from './semantic-scripts.js';

export interface RedisSemanticStoreOptions {
  redis: Redis;
  /**
   * Opens the dedicated pub/sub connection (Redis needs one for SUBSCRIBE), called once, on the
   * first `subscribe` or `whenSubscribed`. The store owns what it returns (`close()` disconnects
   * it). Default: `redis.duplicate()`.
   */
  subscriber?: () => Redis | Promise<Redis>;
  /** Prepended to every key and the channel, e.g. `tollgate:` (tests use a unique one). Default `tollgate:`. */
  prefix?: string;
  /** Quit the command client on `close()`. Default false: it belongs to whoever created it. */
  ownsClient?: boolean;
  /** Errors of the background work (subscribing, fetching announced entries, bad messages). Default: ignored. */
  onError?: (err: unknown) => void;
  /** Entries one tenant may hold; a put beyond it evicts the tenant's least recently used. Default: unbounded. */
  maxEntriesPerTenant?: number;
}

const DEFAULT_BATCH = 500;
const SCAN_COUNT = 1_000;
const DELETE_BATCH = 500;
const PURGE_EVERY_MS = 10_000;
const PURGE_LIMIT = 1_000;
/** Most entries one put evicts (a lowered share is reached over a few puts, never in one long script). */
const TRIM_PER_PUT = 1_000;

export class RedisSemanticStore implements SemanticStore {
  readonly #redis: Redis;
  readonly #ownsClient: boolean;
  readonly #onError: (err: unknown) => void;
  readonly #p: string;
  readonly #idx: string;
  readonly #exp: string;
  readonly #channel: string;
  /** Namespace of the tenants' sets (`<p>sc:t:`). */
  readonly #shares: string;
  readonly #share: number;
  readonly #scripts: Record<keyof typeof SEMANTIC_SCRIPTS, ScriptCall>;
  readonly #feed: SemanticChangeFeed;
  #lastPurge = 0;
  #closed = false;

  constructor(opts: RedisSemanticStoreOptions) {
    this.#redis = opts.redis;
    this.#ownsClient = opts.ownsClient ?? false;
    this.#onError = opts.onError ?? (() => {});
    const prefix = opts.prefix ?? 'tollgate:';
    this.#p = `${prefix}sc:e:`;
    this.#idx = `${prefix}sc:idx`;
    this.#exp = `${prefix}sc:exp`;
    this.#channel = `${prefix}sc:changes`;
    this.#shares = `${prefix}sc:t:`;
    const share = opts.maxEntriesPerTenant ?? 0;
    if (!Number.isInteger(share) || share < 0) throw new RangeError(`maxEntriesPerTenant must be a positive integer, got ${share}`);
    this.#share = share;
    this.#scripts = defineScripts(this.#redis, SEMANTIC_SCRIPTS);
    this.#feed = new SemanticChangeFeed({
      channel: this.#channel,
      openSubscriber: opts.subscriber ?? (() => opts.redis.duplicate()),
      fetch: (ids) => this.#fetch(ids),
      onError: this.#onError,
    });
  }

  async put(entry: SemanticEntry): Promise<string[]> {
    checkEntry(entry);
    this.#checkOpen();
    const now = Date.now();
    const key = this.#p + entry.id;
    const ttl = Math.ceil(entry.expiresAt - now);
    if (ttl <= 0) {
      // Already expired: nothing to keep (and an older entry under this id is gone).
      await exec(
        this.#redis.multi().unlink(key).zrem(this.#idx, entry.id).zrem(this.#exp, entry.id).zrem(this.#shareKey(entry.id), entry.id),
      );
      return [];
    }
    const fields: Array<[string, string | Buffer]> = [
      ['scope', entry.scope],
      ['tenantId', entry.tenantId],
      ['route', entry.route],
      ['embedder', entry.embedder],
      ['question', entry.question],
      ['vector', vectorToBuffer(entry.vector)],
      ['answer', entry.answer],
      ['createdAt', String(entry.createdAt)],
      ['expiresAt', String(entry.expiresAt)],
      ['threshold', entry.threshold === null ? '' : String(entry.threshold)],
    ];
    const evicted = (await this.#scripts.put(
      4,
      key,
      this.#idx,
      this.#exp,
      this.#shareKey(entry.id),
      entry.id,
      String(ttl),
      String(entry.createdAt),
      String(entry.expiresAt),
      String(this.#share),
      this.#p,
      this.#channel,
      this.#feed.message({ kind: 'put', id: entry.id }),
      this.#feed.origin,
      String(TRIM_PER_PUT),
      ...fields.flat(),
    )) as string[];
    if (now - this.#lastPurge >= PURGE_EVERY_MS) {
      this.#lastPurge = now;
      this.purgeExpired(now).catch(this.#onError);
    }
    return evicted;
  }

  async get(id: string): Promise<SemanticEntry | undefined> {
    this.#checkOpen();
    const key = this.#p + id;
    const pipeline = this.#redis.pipeline().hgetallBuffer(key);
    (pipeline as unknown as Record<string, ScriptCall>)[SEMANTIC_SCRIPTS.touch.name]!(2, key, this.#shareKey(id), id); // a use
    const [hash] = await exec(pipeline);
    return this.#parse(id, hash as Record<string, Buffer>, Date.now());
  }

  async delete(ids: string[]): Promise<void> {
    this.#checkOpen();
    if (ids.length === 0) return;
    const multi = this.#redis
      .multi()
      .unlink(...ids.map((id) => this.#p + id))
      .zrem(this.#idx, ...ids)
      .zrem(this.#exp, ...ids);
    for (const [shareKey, members] of this.#byShare(ids)) multi.zrem(shareKey, ...members);
    await exec(multi.publish(this.#channel, this.#feed.message({ kind: 'delete', ids })));
  }

  async setThreshold(id: string, threshold: number | null): Promise<void> {
    this.#checkOpen();
    await this.#scripts.threshold(
      1,
      this.#p + id,
      threshold === null ? '' : String(threshold),
      this.#channel,
      this.#feed.message({ kind: 'threshold', id, threshold }),
    );
  }

  /**
   * Walks `sc:idx` (ZSCAN on the filter's literal prefix, every id checked against the whole
   * filter), deletes the matches in batches, then announces the filter once. Returns the ids of
   * the removed entries that had not expired.
   */
  async invalidate(filter: CacheFilter): Promise<string[]> {
    this.#checkOpen();
    const glob = filterGlob(filter);
    if (glob === undefined) return [];
    const matched = new Set<string>(); // ZSCAN may return a member twice
    let cursor = '0';
    do {
      const [next, items] = await this.#redis.zscan(this.#idx, cursor, 'MATCH', glob, 'COUNT', SCAN_COUNT);
      cursor = next;
      for (let i = 0; i < items.length; i += 2) if (matchesFilter(items[i]!, filter)) matched.add(items[i]!);
    } while (cursor !== '0');

    const removed: string[] = [];
    const now = Date.now();
    const ids = [...matched];
    for (let start = 0; start < ids.length; start += DELETE_BATCH) {
      const batch = ids.slice(start, start + DELETE_BATCH);
      const pipeline = this.#redis.pipeline();
      for (const id of batch) pipeline.hget(this.#p + id, 'expiresAt').unlink(this.#p + id);
      pipeline.zrem(this.#idx, ...batch).zrem(this.#exp, ...batch);
      for (const [shareKey, members] of this.#byShare(batch)) pipeline.zrem(shareKey, ...members);
      const replies = await exec(pipeline);
      batch.forEach((id, i) => {
        const expiresAt = replies[2 * i];
        if (expiresAt !== null && Number(expiresAt) > now) removed.push(id);
      });
    }
    await this.#redis.publish(this.#channel, this.#feed.message({ kind: 'invalidate', filter }));
    return removed;
  }

  /**
   * Every unexpired entry, oldest first (createdAt, then id in byte order, as Redis sorts equal
   * scores), `batchSize` ids at a time (a batch is smaller when some have expired). Pages by key,
   * so entries removed during the scan never make it skip others. Ids whose hash is gone are
   * removed from the sets on the way.
   */
  async scan(onBatch: (entries: SemanticEntry[]) => void | Promise<void>, batchSize = DEFAULT_BATCH): Promise<void> {
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`batchSize must be a positive integer, got ${batchSize}`);
    this.#checkOpen();
    let lastScore: number | undefined;
    let lastId = '';
    let seenAtLastScore = 0; // members with score lastScore already returned: fetched again, skipped
    let extra = 0; // more to fetch over when members were added at lastScore before lastId meanwhile
    for (;;) {
      const limit = batchSize + seenAtLastScore + extra;
      const raw =
        lastScore === undefined
          ? await this.#redis.zrangebyscore(this.#idx, '-inf', '+inf', 'WITHSCORES', 'LIMIT', 0, limit)
          : await this.#redis.zrangebyscore(this.#idx, String(lastScore), '+inf', 'WITHSCORES', 'LIMIT', 0, limit);
      const page: string[] = [];
      for (let i = 0; i < raw.length; i += 2) {
        const id = raw[i]!;
        const score = Number(raw[i + 1]);
        if (lastScore !== undefined && score === lastScore && compareBytes(id, lastId) <= 0) continue;
        page.push(id);
        if (score === lastScore) seenAtLastScore++;
        else {
          lastScore = score;
          seenAtLastScore = 1;
        }
        lastId = id;
      }
      if (page.length > 0) {
        const hashes = await this.#hashes(page);
        const now = Date.now();
        const entries: SemanticEntry[] = [];
        const gone: string[] = [];
        page.forEach((id, i) => {
          const hash = hashes[i]!;
          const entry = this.#parse(id, hash, now);
          if (entry) entries.push(entry);
          else if (!hash['vector']) gone.push(id);
        });
        if (entries.length > 0) await onBatch(entries);
        if (gone.length > 0) {
          const multi = this.#redis.multi().zrem(this.#idx, ...gone).zrem(this.#exp, ...gone);
          for (const [shareKey, members] of this.#byShare(gone)) multi.zrem(shareKey, ...members);
          await exec(multi);
        }
      }
      if (raw.length / 2 < limit) return;
      extra = page.length === 0 ? extra + batchSize : 0;
    }
  }

  /**
   * Changes made by other processes. The first call opens the subscriber connection; await
   * `whenSubscribed()` before relying on it (e.g. before the start-up `scan`).
   */
  subscribe(listener: (change: SemanticChange) => void): () => void {
    this.#checkOpen();
    return this.#feed.subscribe(listener);
  }

  /** Resolves once the subscriber connection has subscribed to the channel (opening it if needed). */
  whenSubscribed(): Promise<void> {
    this.#checkOpen();
    return this.#feed.whenSubscribed();
  }

  /**
   * `cb` runs each time the subscriber connection has come back and subscribed again after a
   * disconnection: changes published meanwhile were lost, so the caller should rebuild what it
   * derived from them (clear the index, `scan` again). Returns a function that removes `cb`.
   */
  onResync(cb: () => void): () => void {
    return this.#feed.onResync(cb);
  }

  /** Removes from the sets up to `limit` ids expired at `now` (their hashes expire by themselves); returns how many. */
  async purgeExpired(now: number = Date.now(), limit: number = PURGE_LIMIT): Promise<number> {
    this.#checkOpen();
    return Number(await this.#scripts.purge(2, this.#idx, this.#exp, String(now), String(limit), this.#shares));
  }

  /** Idempotent. Disconnects the subscriber; quits the command client only with `ownsClient: true`. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#feed.close();
    if (this.#ownsClient) await quit(this.#redis);
  }

  /** The hashes of `ids`, in order (empty for those gone). */
  async #hashes(ids: string[]): Promise<Array<Record<string, Buffer>>> {
    const pipeline = this.#redis.pipeline();
    for (const id of ids) pipeline.hgetallBuffer(this.#p + id);
    return (await exec(pipeline)) as Array<Record<string, Buffer>>;
  }

  /** The unexpired entries of `ids`, by id: those of announced puts. */
  async #fetch(ids: string[]): Promise<Map<string, SemanticEntry>> {
    const hashes = await this.#hashes(ids);
    const now = Date.now();
    const entries = new Map<string, SemanticEntry>();
    ids.forEach((id, i) => {
      const entry = this.#parse(id, hashes[i]!, now);
      if (entry) entries.set(id, entry);
    });
    return entries;
  }

  #parse(id: string, hash: Record<string, Buffer>, now: number): SemanticEntry | undefined {
    const vector = hash['vector'];
    if (!vector) return undefined;
    const text = (field: string) => hash[field]?.toString('utf8') ?? '';
    const expiresAt = Number(text('expiresAt'));
    if (!(expiresAt > now)) return undefined;
    const threshold = text('threshold');
    return {
      id,
      scope: text('scope'),
      tenantId: text('tenantId'),
      route: text('route'),
      embedder: text('embedder'),
      question: text('question'),
      vector: bufferToVector(vector),
      answer: text('answer'),
      createdAt: Number(text('createdAt')),
      expiresAt,
      threshold: threshold === '' ? null : Number(threshold),
    };
  }

  #checkOpen(): void {
    if (this.#closed) throw new Error('semantic store is closed');
  }

  /** The set of the tenant `id` belongs to. */
  #shareKey(id: string): string {
    return this.#shares + tenantOfKey(id);
  }

  /** `ids` grouped by their tenants' sets. */
  #byShare(ids: string[]): Map<string, string[]> {
    const groups = new Map<string, string[]>();
    for (const id of ids) {
      const key = this.#shareKey(id);
      const group = groups.get(key);
      if (group) group.push(id);
      else groups.set(key, [id]);
    }
    return groups;
  }
}

/** Orders two strings as Redis orders equal-score members: by their UTF-8 bytes. */
function compareBytes(a: string, b: string): number {
  return a === b ? 0 : Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}
