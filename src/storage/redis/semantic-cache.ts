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
 * - `<p>sc:changes` pub/sub channel: JSON `{origin, kind, id | ids | threshold | filter}`,
 *   published in the same MULTI (or script) as the change. `put` messages carry only the id; the
 *   receiver fetches the entry. A process never hears its own messages (origin: a random id per
 *   store instance).
 *
 * Delivery to listeners: messages are handled in order, a batch at a time (the entries of a
 * batch's puts fetched in one pipeline), so a put followed by a delete never arrives reversed.
 * Pub/sub loses what is published while the subscriber is disconnected: after it reconnects and
 * has subscribed again, the store calls the `onResync` callbacks, whose job is to rebuild the
 * index from `scan` (entries still missed are also caught by `get` returning undefined on hit).
 *
 * Like the counters, it targets a single Redis (or a Sentinel-managed primary), not Cluster.
 * The command client is the caller's (`ownsClient` to quit it on close); the subscriber
 * connection is the store's own and is closed by `close()`.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { CacheFilter, SemanticChange, SemanticEntry, SemanticStore } from '../../cache/types.js';
import { matchesFilter, tenantOfKey } from '../memory/exact-cache.js';
import { bufferToVector, checkEntry, vectorToBuffer } from '../sqlite/semantic-cache.js';
import { filterGlob, quit } from './exact-cache.js';

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

type MessageBody =
  | { kind: 'put'; id: string }
  | { kind: 'delete'; ids: string[] }
  | { kind: 'threshold'; id: string; threshold: number | null }
  | { kind: 'invalidate'; filter: CacheFilter };
type Message = MessageBody & { origin: string };

const DEFAULT_BATCH = 500;
const SCAN_COUNT = 1_000;
const DELETE_BATCH = 500;
const PURGE_EVERY_MS = 10_000;
const PURGE_LIMIT = 1_000;
/** Most entries one put evicts (a lowered share is reached over a few puts, never in one long script). */
const TRIM_PER_PUT = 1_000;

/**
 * Removes from both sets, and from their tenants' sets (ARGV[3] .. tenant), up to ARGV[2] members
 * whose expiry (sc:exp score) is <= ARGV[1].
 */
const PURGE_LUA = `
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #ids > 0 then
  redis.call('ZREM', KEYS[1], unpack(ids))
  redis.call('ZREM', KEYS[2], unpack(ids))
  for _, id in ipairs(ids) do
    redis.call('ZREM', ARGV[3] .. (string.match(id, '^([^/]*)/') or ''), id)
  end
end
return #ids`;

/**
 * Writes an entry and holds its tenant to its share. KEYS: the entry's hash, sc:idx, sc:exp, the
 * tenant's set. ARGV: [1] id, [2] TTL ms, [3] createdAt, [4] expiresAt, [5] share (0: unbounded),
 * [6] the hashes' key namespace, [7] channel, [8] the put message, [9] origin, [10] trim cap,
 * [11..] the hash's fields and values. Returns the evicted ids (announced as one delete).
 */
const PUT_LUA = `
local id = ARGV[1]
local ttl = tonumber(ARGV[2])
redis.call('UNLINK', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 11, #ARGV))
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('ZADD', KEYS[2], ARGV[3], id)
redis.call('ZADD', KEYS[3], ARGV[4], id)
local top = redis.call('ZRANGE', KEYS[4], -1, -1, 'WITHSCORES')
local score = 1
if #top == 2 then score = tonumber(top[2]) + 1 end
redis.call('ZADD', KEYS[4], score, id)
if redis.call('PTTL', KEYS[4]) < ttl then redis.call('PEXPIRE', KEYS[4], ttl) end
redis.call('PUBLISH', ARGV[7], ARGV[8])
local share = tonumber(ARGV[5])
if share <= 0 then return {} end
local over = math.min(redis.call('ZCARD', KEYS[4]) - share, tonumber(ARGV[10]))
if over <= 0 then return {} end
local evicted = {}
for _, member in ipairs(redis.call('ZRANGE', KEYS[4], 0, over)) do
  if #evicted == over then break end
  if member ~= id then evicted[#evicted + 1] = member end
end
for _, member in ipairs(evicted) do
  redis.call('UNLINK', ARGV[6] .. member)
  redis.call('ZREM', KEYS[4], member)
  redis.call('ZREM', KEYS[2], member)
  redis.call('ZREM', KEYS[3], member)
end
redis.call('PUBLISH', ARGV[7], cjson.encode({origin = ARGV[9], kind = 'delete', ids = evicted}))
return evicted`;

/** A get that found the entry (KEYS[1], its hash) makes it its tenant's (KEYS[2]) most recently used. ARGV[1]: the id. */
const TOUCH_LUA = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local top = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
if #top == 2 and top[1] == ARGV[1] then return 1 end
local score = 1
if #top == 2 then score = tonumber(top[2]) + 1 end
redis.call('ZADD', KEYS[2], score, ARGV[1])
local ttl = redis.call('PTTL', KEYS[1])
if redis.call('PTTL', KEYS[2]) < ttl then redis.call('PEXPIRE', KEYS[2], ttl) end
return 1`;

/** Sets the threshold only on an existing entry (HSET would create a bare hash), and announces it. */
const THRESHOLD_LUA = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'threshold', ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1`;

const COMMANDS = {
  purge: 'tollgateSemanticPurge',
  threshold: 'tollgateSemanticThreshold',
  put: 'tollgateSemanticPut',
  touch: 'tollgateSemanticTouch',
} as const;
type ScriptCall = (numKeys: number, ...keysAndArgs: Array<string | Buffer>) => Promise<unknown>;

export class RedisSemanticStore implements SemanticStore {
  readonly #redis: Redis;
  readonly #openSubscriber: () => Redis | Promise<Redis>;
  readonly #ownsClient: boolean;
  readonly #onError: (err: unknown) => void;
  readonly #p: string;
  readonly #idx: string;
  readonly #exp: string;
  readonly #channel: string;
  /** Namespace of the tenants' sets (`<p>sc:t:`). */
  readonly #shares: string;
  readonly #share: number;
  readonly #origin = randomUUID();
  readonly #listeners = new Set<(change: SemanticChange) => void>();
  readonly #resyncs = new Set<() => void>();
  #subscriber: Redis | undefined;
  #subscribed: Promise<void> | undefined;
  #abortSubscribe: ((err: Error) => void) | undefined;
  #queue: Message[] = [];
  #draining = false;
  #lastPurge = 0;
  #closed = false;

  constructor(opts: RedisSemanticStoreOptions) {
    this.#redis = opts.redis;
    this.#openSubscriber = opts.subscriber ?? (() => opts.redis.duplicate());
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
    this.#redis.defineCommand(COMMANDS.purge, { lua: PURGE_LUA });
    this.#redis.defineCommand(COMMANDS.threshold, { lua: THRESHOLD_LUA });
    this.#redis.defineCommand(COMMANDS.put, { lua: PUT_LUA });
    this.#redis.defineCommand(COMMANDS.touch, { lua: TOUCH_LUA });
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
    const evicted = (await this.#script(COMMANDS.put)(
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
      this.#message({ kind: 'put', id: entry.id }),
      this.#origin,
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
    (pipeline as unknown as Record<string, ScriptCall>)[COMMANDS.touch]!(2, key, this.#shareKey(id), id); // a use
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
    await exec(multi.publish(this.#channel, this.#message({ kind: 'delete', ids })));
  }

  async setThreshold(id: string, threshold: number | null): Promise<void> {
    this.#checkOpen();
    await this.#script(COMMANDS.threshold)(
      1,
      this.#p + id,
      threshold === null ? '' : String(threshold),
      this.#channel,
      this.#message({ kind: 'threshold', id, threshold }),
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
    await this.#redis.publish(this.#channel, this.#message({ kind: 'invalidate', filter }));
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
        const pipeline = this.#redis.pipeline();
        for (const id of page) pipeline.hgetallBuffer(this.#p + id);
        const hashes = await exec(pipeline);
        const now = Date.now();
        const entries: SemanticEntry[] = [];
        const gone: string[] = [];
        page.forEach((id, i) => {
          const hash = hashes[i] as Record<string, Buffer>;
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
    this.#listeners.add(listener);
    this.whenSubscribed().catch(this.#onError);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  /** Resolves once the subscriber connection has subscribed to the channel (opening it if needed). */
  whenSubscribed(): Promise<void> {
    this.#checkOpen();
    this.#subscribed ??= this.#startSubscriber().catch((err: unknown) => {
      this.#subscribed = undefined; // the next call tries again
      throw err;
    });
    return this.#subscribed;
  }

  /**
   * `cb` runs each time the subscriber connection has come back and subscribed again after a
   * disconnection: changes published meanwhile were lost, so the caller should rebuild what it
   * derived from them (clear the index, `scan` again). Returns a function that removes `cb`.
   */
  onResync(cb: () => void): () => void {
    this.#resyncs.add(cb);
    return () => {
      this.#resyncs.delete(cb);
    };
  }

  /** Removes from the sets up to `limit` ids expired at `now` (their hashes expire by themselves); returns how many. */
  async purgeExpired(now: number = Date.now(), limit: number = PURGE_LIMIT): Promise<number> {
    this.#checkOpen();
    return Number(await this.#script(COMMANDS.purge)(2, this.#idx, this.#exp, String(now), String(limit), this.#shares));
  }

  /** Idempotent. Disconnects the subscriber; quits the command client only with `ownsClient: true`. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#listeners.clear();
    this.#resyncs.clear();
    this.#queue = [];
    this.#abortSubscribe?.(new Error('semantic store is closed'));
    this.#abortSubscribe = undefined;
    const sub = this.#subscriber;
    this.#subscriber = undefined;
    if (sub) await quit(sub, true);
    if (this.#ownsClient) await quit(this.#redis);
  }

  async #startSubscriber(): Promise<void> {
    const sub = await this.#openSubscriber();
    if (this.#closed) {
      await quit(sub, true);
      throw new Error('semantic store is closed');
    }
    this.#subscriber = sub;
    if (sub.listenerCount('error') === 0) sub.on('error', () => {}); // failures surface as reconnects; see onResync
    sub.on('message', (channel: string, text: string) => {
      if (channel === this.#channel) this.#receive(text);
    });
    await new Promise<void>((resolve, reject) => {
      this.#abortSubscribe = reject;
      let subscribedOnce = false;
      // On the first 'ready', and on every later one (a reconnection: ioredis resubscribes by
      // itself too, and a second SUBSCRIBE is harmless). A failed attempt is retried on the next.
      const attempt = () => {
        if (this.#closed) return;
        sub.subscribe(this.#channel).then(
          () => {
            if (!subscribedOnce) {
              subscribedOnce = true;
              this.#abortSubscribe = undefined;
              resolve();
              return;
            }
            for (const cb of this.#resyncs) {
              try {
                cb();
              } catch (err) {
                this.#onError(err);
              }
            }
          },
          (err: unknown) => this.#onError(err),
        );
      };
      sub.on('ready', attempt);
      if (sub.status === 'ready') attempt();
      else if (sub.status === 'wait') sub.connect().catch(() => {});
    });
  }

  #receive(text: string): void {
    let message: Message;
    try {
      message = JSON.parse(text) as Message;
    } catch (err) {
      this.#onError(err);
      return;
    }
    if (message.origin === this.#origin || this.#listeners.size === 0 || this.#closed) return;
    this.#queue.push(message);
    void this.#drain();
  }

  /** Delivers queued messages in order; the entries of a batch's puts are fetched in one pipeline. */
  async #drain(): Promise<void> {
    if (this.#draining) return;
    this.#draining = true;
    try {
      while (this.#queue.length > 0 && !this.#closed) {
        const batch = this.#queue.splice(0);
        const putIds = [...new Set(batch.flatMap((m) => (m.kind === 'put' ? [m.id] : [])))];
        const entries = new Map<string, SemanticEntry>();
        if (putIds.length > 0) {
          try {
            const pipeline = this.#redis.pipeline();
            for (const id of putIds) pipeline.hgetallBuffer(this.#p + id);
            const hashes = await exec(pipeline);
            const now = Date.now();
            putIds.forEach((id, i) => {
              const entry = this.#parse(id, hashes[i] as Record<string, Buffer>, now);
              if (entry) entries.set(id, entry);
            });
          } catch (err) {
            this.#onError(err); // those puts are lost to this process; get() on hit, or a resync, recovers
          }
        }
        for (const m of batch) {
          let change: SemanticChange | undefined;
          if (m.kind === 'put') {
            const entry = entries.get(m.id);
            if (entry) change = { kind: 'put', entry };
          } else if (m.kind === 'delete') change = { kind: 'delete', ids: m.ids };
          else if (m.kind === 'threshold') change = { kind: 'threshold', id: m.id, threshold: m.threshold };
          else if (m.kind === 'invalidate') change = { kind: 'invalidate', filter: m.filter };
          if (change) this.#deliver(change);
        }
      }
    } finally {
      this.#draining = false;
    }
  }

  #deliver(change: SemanticChange): void {
    for (const listener of this.#listeners) {
      try {
        listener(change);
      } catch (err) {
        this.#onError(err);
      }
    }
  }

  #message(change: MessageBody): string {
    return JSON.stringify({ origin: this.#origin, ...change });
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

  #script(name: (typeof COMMANDS)[keyof typeof COMMANDS]): ScriptCall {
    const redis = this.#redis as unknown as Record<string, ScriptCall>;
    return (...args) => redis[name]!(...args);
  }
}

/** Runs a MULTI or pipeline; throws the first command error; returns the replies. */
async function exec(batch: { exec(): Promise<Array<[Error | null, unknown]> | null> }): Promise<unknown[]> {
  const results = await batch.exec();
  if (results === null) throw new Error('redis transaction aborted');
  for (const [err] of results) if (err) throw err;
  return results.map(([, reply]) => reply);
}

/** Orders two strings as Redis orders equal-score members: by their UTF-8 bytes. */
function compareBytes(a: string, b: string): number {
  return a === b ? 0 : Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}
