import { DEFAULTS } from '../config/defaults.js';
import { ConfigError, StoreError } from '../core/errors.js';
import { isValidSessionId } from '../protocol/session-id.js';
import type { SessionData, SessionExpiry, SessionStore } from './contract.js';
import { StorageGuard, type StorageLogger } from './guard.js';
import { checkLifetime } from './lifetime.js';
import type { SessionLock } from '../locks/lock-table.js';
import { connectRedis, createRedisClient, DEFAULT_REDIS_URL, isRedisUnavailable, LuaScript, REDIS_LAYOUT_VERSION, REDIS_SHARDS, RedisKeys, type RedisClient } from './redis-client.js';
import { ACCESS_FIELD, EXPIRE_LUA, LIFETIME_FIELD, RedisLocks } from './redis-locks.js';
import { LOCK_LOST } from './lease-locks.js';

export interface RedisStoreOptions {
  /** `redis://`, `rediss://`, `redis+sentinel://` or `redis+cluster://` URL (see createRedisClient). */
  url?: string;
  /** Put before every key, so several deployments can share one Redis. Default `sessionserver:`. */
  prefix?: string;
  /** Seconds without access after which Redis expires a session by itself. Default 1440. */
  maxLifetime?: number;
  /** Milliseconds a writer lock lives without renewal. Default 10000. */
  lockLease?: number;
  /** Milliseconds one operation may take before it fails with `Storage unavailable` (`storageTimeout`); 0 waits forever. Default 1000. */
  timeout?: number;
  /** Where outages are logged (one warning when one starts, one info line when it ends). */
  log?: StorageLogger;
  /**
   * Replicas that must acknowledge each write (`WAIT`) before `close`/`commit` answer `ok`
   * (`redisWaitReplicas`); `err` when fewer do within the storage timeout. Default 0.
   */
  waitReplicas?: number;
}

// A session is a hash: user keys carry a `=` before them, so no key can collide with ours.
const VALUE_MARK = '=';
// The token of the writer whose close wrote the session: a close sent again finds its own write.
const WRITER_FIELD = '@writer';
const COLLECT_BATCH = 500;

// Every script's KEYS start with the shard's index and the session's hash (KEYS[2], as EXPIRE_LUA expects).

// KEYS: index, data. ARGV: now ms, ttl ms, id. The session's fields, or nil when it does not exist.
const LOAD = new LuaScript(`
local fields = redis.call('HGETALL', KEYS[2])
if #fields == 0 then return false end
redis.call('HSET', KEYS[2], '${ACCESS_FIELD}', ARGV[1])
${EXPIRE_LUA(2)}
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[3])
return fields
`);

// Replaces the values (from ARGV[first] on), keeping the session's own lifetime; records the access.
const WRITE_LUA = (first: number) => `
local own = redis.call('HGET', KEYS[2], '${LIFETIME_FIELD}')
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], '${ACCESS_FIELD}', ARGV[2])
if own then redis.call('HSET', KEYS[2], '${LIFETIME_FIELD}', own) end
for i = ${first}, #ARGV, 1000 do
  redis.call('HSET', KEYS[2], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
redis.call('PEXPIRE', KEYS[2], own and tonumber(own) * 1000 or ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])`;

// KEYS: index, data, lock. ARGV: writer's lock token ('' = unfenced), now ms, ttl ms, id, field, value, …
// A writer whose lease ran out (and may have been taken over) must not overwrite the new holder.
const SAVE = new LuaScript(`
if ARGV[1] ~= '' and redis.call('GET', KEYS[3]) ~= ARGV[1] then return 0 end
${WRITE_LUA(5)}
return 1
`);

// KEYS: index, data, lock, waiting flag. ARGV: token, now ms, ttl ms, id, release channel, field, value, …
// `close` in one round trip: the fenced write, then the release, announced only to flagged waiters.
// Sent again after it ran (its reply lost in a failover), it finds its own write and says so.
const SAVE_AND_RELEASE = new LuaScript(`
if redis.call('GET', KEYS[3]) ~= ARGV[1] then
  if redis.call('HGET', KEYS[2], '${WRITER_FIELD}') == ARGV[1] then return 1 end
  return 0
end
${WRITE_LUA(6)}
redis.call('HSET', KEYS[2], '${WRITER_FIELD}', ARGV[1])
redis.call('DEL', KEYS[3])
if redis.call('DEL', KEYS[4]) == 1 then redis.call('PUBLISH', ARGV[5], '') end
return 1
`);

// KEYS: index, data. ARGV: now ms, ttl ms, id.
const TOUCH = new LuaScript(`
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
redis.call('HSET', KEYS[2], '${ACCESS_FIELD}', ARGV[1])
${EXPIRE_LUA(2)}
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[3])
return 1
`);

// KEYS: index, data. ARGV: now ms, ttl ms, id, own lifetime in seconds ('' = back to the max lifetime).
const SET_LIFETIME = new LuaScript(`
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
if ARGV[4] == '' then redis.call('HDEL', KEYS[2], '${LIFETIME_FIELD}')
else redis.call('HSET', KEYS[2], '${LIFETIME_FIELD}', ARGV[4]) end
redis.call('HSET', KEYS[2], '${ACCESS_FIELD}', ARGV[1])
${EXPIRE_LUA(2)}
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[3])
return 1
`);

// KEYS: index, data. ARGV: id. 1 when the session existed.
const DESTROY = new LuaScript(`
redis.call('ZREM', KEYS[1], ARGV[1])
return redis.call('DEL', KEYS[2])
`);

// KEYS: index, data, lock. ARGV: cutoff ms, now ms, id. 1 collected, 0 kept, -1 gone already (unindexed).
// Kept: write-locked on any instance, used since the cutoff, or within its own lifetime.
const COLLECT = new LuaScript(`
if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
local fields = redis.call('HMGET', KEYS[2], '${ACCESS_FIELD}', '${LIFETIME_FIELD}')
if not fields[1] then
  redis.call('ZREM', KEYS[1], ARGV[3])
  return -1
end
local access = tonumber(fields[1])
if fields[2] then
  if access + tonumber(fields[2]) * 1000 > tonumber(ARGV[2]) then return 0 end
elseif access >= tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[1], ARGV[3])
return 1
`);

// KEYS: layout. ARGV: version. The version recorded for this prefix (recorded now if none was).
const CLAIM_LAYOUT = new LuaScript(`
redis.call('SET', KEYS[1], ARGV[1], 'NX')
return redis.call('GET', KEYS[1])
`);

/**
 * Sessions in Redis (single server, Sentinel or Cluster), shared by any number of
 * sessionserver instances. Each session is a hash `<prefix>{shard}:<id>` that Redis expires by
 * itself `maxLifetime` (or the session's own lifetime) after the last access; every write
 * replaces it whole in one Lua script. Each of REDIS_SHARDS shards keeps a sorted set of its
 * sessions' last accesses (`<prefix>{shard}access`), on the shard's slot, so that `gc` finds
 * sessions idle for less than the lifetime and `count` stays cheap, while a request touches
 * only its session's slot. Writer locks: see RedisLocks. A web request's cycle costs two round
 * trips: `open … rw` (lock + load + touch) and `close` (write + unlock, saveAndRelease).
 */
export class RedisStore implements SessionStore {
  readonly name = 'redis';
  readonly locks: RedisLocks;
  readonly keys: RedisKeys;
  readonly client: RedisClient;
  /** Bounds every operation in time and reports outages. */
  readonly guard: StorageGuard;
  /** Replicas that must acknowledge a write before it counts as done (`redisWaitReplicas`). */
  readonly waitReplicas: number;
  private readonly ttlMs: number;
  private closed = false;

  constructor(options: RedisStoreOptions = {}) {
    const maxLifetime = options.maxLifetime ?? DEFAULTS.maxLifetime;
    if (!Number.isSafeInteger(maxLifetime) || maxLifetime < 1) throw new ConfigError('the redis store needs maxLifetime >= 1 second');
    const waitReplicas = options.waitReplicas ?? DEFAULTS.redisWaitReplicas;
    if (!Number.isSafeInteger(waitReplicas) || waitReplicas < 0) throw new ConfigError('redisWaitReplicas must be a whole number, 0 or more');
    this.waitReplicas = waitReplicas;
    this.ttlMs = maxLifetime * 1000;
    this.keys = new RedisKeys(options.prefix);
    const timeoutMs = options.timeout ?? DEFAULTS.storageTimeout;
    this.guard = new StorageGuard({ storage: this.name, timeoutMs, log: options.log, isUnavailable: isRedisUnavailable });
    this.client = createRedisClient(options.url ?? DEFAULT_REDIS_URL, { timeoutMs });
    this.locks = new RedisLocks(this.client, this.keys, options.lockLease, this.ttlMs, this.guard);
  }

  async open(): Promise<void> {
    await connectRedis(this.client, 'Redis');
    try {
      await this.checkLayout();
    } catch (error) {
      this.client.disconnect();
      throw error;
    }
    await this.locks.start();
  }

  /**
   * Refuses to run beside instances of another key layout (a rolling upgrade across a change of
   * the lock protocol): their locks would not see ours, and two writers could hold one session.
   */
  private async checkLayout(): Promise<void> {
    const { keys } = this;
    const [recorded, layoutOne] = await Promise.all([
      CLAIM_LAYOUT.run(this.client, [keys.layout], [REDIS_LAYOUT_VERSION]) as Promise<string>,
      this.client.exists(keys.layoutOneIndex),
    ]);
    const stop = (other: string, cleanUp: string) =>
      new ConfigError(
        `Redis prefix "${keys.prefix}" is in use by sessionserver instances with key layout ${other}; this instance uses layout ${REDIS_LAYOUT_VERSION}. ` +
          `Their writer locks do not see each other, so they must not run side by side: stop the other instances first (or give this one its own redisPrefix), then ${cleanUp}. ` +
          'Sessions written in the old layout are not read by the new one (they expire by themselves).',
      );
    if (layoutOne === 1) throw stop('1 (the key ' + keys.layoutOneIndex + ' exists)', `delete the key ${keys.layoutOneIndex}`);
    if (String(recorded) !== String(REDIS_LAYOUT_VERSION)) throw stop(String(recorded), `delete the key ${keys.layout}`);
  }

  load(id: string): Promise<SessionData | undefined> {
    // Opened for writing: the lock attempt loaded it already (no other writer since).
    const preloaded = this.locks.takePreloaded(id);
    if (preloaded !== undefined) return Promise.resolve(preloaded === null ? undefined : toSessionData(preloaded));
    return this.guard.run(async () => {
      const of = this.keys.of(id);
      const fields = (await LOAD.run(this.client, [of.accessIndex, of.data], [Date.now(), this.ttlMs, id])) as string[] | null;
      return fields ? toSessionData(fields) : undefined;
    });
  }

  save(id: string, data: SessionData): Promise<void> {
    return this.guard.run(async () => {
      this.locks.dropPreloaded(id);
      const args: Array<string | number> = [this.locks.tokenOf(id) ?? '', Date.now(), this.ttlMs, id];
      for (const [key, value] of data) args.push(VALUE_MARK + key, value);
      const of = this.keys.of(id);
      const written = await this.write(SAVE, [of.accessIndex, of.data, of.lock], args);
      if (written !== 1) throw new StoreError(LOCK_LOST);
    });
  }

  /** `close`: the fenced write and the release of the writer lock in one round trip. */
  async saveAndRelease(id: string, data: SessionData, lock: SessionLock): Promise<void> {
    await this.locks.saveAndRelease(id, lock, () => this.save(id, data), (token) =>
      this.guard.run(async () => {
        this.locks.dropPreloaded(id);
        const of = this.keys.of(id);
        const args: Array<string | number> = [token, Date.now(), this.ttlMs, id, of.releases];
        for (const [key, value] of data) args.push(VALUE_MARK + key, value);
        // Unanswered (or replicas missing): the lock may be held still; its lease ends it.
        return (await this.write(SAVE_AND_RELEASE, [of.accessIndex, of.data, of.lock, of.waiting], args)) === 1;
      }),
    );
  }

  /**
   * Runs a writing script; with redisWaitReplicas, `WAIT`s in the same round trip for that many
   * replicas of the node that ran it, at most most of the storage timeout, and fails when fewer
   * acknowledged (the write may be lost if that master fails now).
   */
  private async write(script: LuaScript, keys: string[], args: Array<string | number>): Promise<unknown> {
    if (this.waitReplicas === 0) return script.run(this.client, keys, args);
    const waitMs = this.guard.timeoutMs === 0 ? 0 : Math.max(1, Math.floor((this.guard.timeoutMs * 3) / 4));
    const [result, acknowledged] = await script.runAndWait(this.client, keys, args, this.waitReplicas, waitMs);
    if (result === 1 && acknowledged < this.waitReplicas) {
      throw new Error(`written, but acknowledged by ${acknowledged} of ${this.waitReplicas} replicas (redisWaitReplicas)`);
    }
    return result;
  }

  destroy(id: string): Promise<boolean> {
    return this.guard.run(async () => {
      this.locks.dropPreloaded(id);
      const deleted = await this.write(DESTROY, [this.keys.accessIndexOf(id), this.keys.data(id)], [id]);
      return deleted === 1;
    });
  }

  touch(id: string): Promise<boolean> {
    return this.guard.run(async () => {
      const touched = await TOUCH.run(this.client, [this.keys.accessIndexOf(id), this.keys.data(id)], [Date.now(), this.ttlMs, id]);
      return touched === 1;
    });
  }

  setLifetime(id: string, seconds: number | null): Promise<boolean> {
    return this.guard.run(async () => {
      checkLifetime(seconds);
      const set = await SET_LIFETIME.run(this.client, [this.keys.accessIndexOf(id), this.keys.data(id)], [Date.now(), this.ttlMs, id, seconds === null ? '' : seconds]);
      return set === 1;
    });
  }

  expiry(id: string): Promise<SessionExpiry | undefined> {
    return this.guard.run(async () => {
      const [access, lifetime] = await this.client.hmget(this.keys.data(id), ACCESS_FIELD, LIFETIME_FIELD);
      if (access === null || access === undefined) return undefined;
      return { lifetime: lifetime == null ? null : Number(lifetime), lastAccess: Number(access) };
    });
  }

  /** Walks every shard's index; entries of sessions Redis has expired are left out. */
  async ids(): Promise<string[]> {
    const ids: string[] = [];
    await forEachShard(async (shard) => {
      // Each batch within the timeout: a long listing goes on as long as Redis answers.
      for (let offset = 0; ; offset += COLLECT_BATCH) {
        const found = await this.guard.run(async () => {
          const batch = await this.client.zrange(this.keys.accessIndex(shard), String(offset), String(offset + COLLECT_BATCH - 1));
          const valid = batch.filter(isValidSessionId);
          const exists = await Promise.all(valid.map((id) => this.client.exists(this.keys.data(id))));
          return { more: batch.length === COLLECT_BATCH, ids: valid.filter((_, i) => exists[i] === 1) };
        });
        ids.push(...found.ids);
        if (!found.more) return;
      }
    });
    return ids;
  }

  /**
   * Walks each shard's index from the oldest access up to the cutoff. Each candidate is checked
   * and deleted (with its index entry) by one script on its shard's slot, skipped while
   * write-locked on any instance; entries of sessions Redis already expired are dropped.
   */
  async collect(maxIdleMs: number, isHeld: (id: string) => boolean): Promise<number> {
    const now = Date.now();
    const cutoff = now - maxIdleMs;
    let removed = 0;
    await forEachShard(async (shard) => {
      const index = this.keys.accessIndex(shard);
      // Each batch within the timeout: a long sweep goes on as long as Redis answers.
      for (let offset = 0; ; ) {
        const batch = await this.guard.run(async () => {
          const ids = await this.client.zrangebyscore(index, '-inf', `(${cutoff}`, 'LIMIT', offset, COLLECT_BATCH);
          const outcomes = await Promise.all(
            ids.map((id) => {
              if (!isValidSessionId(id)) return this.client.zrem(index, id).then(() => -1);
              if (isHeld(id)) return 0;
              return COLLECT.run(this.client, [index, this.keys.data(id), this.keys.lock(id)], [cutoff, now, id]) as Promise<number>;
            }),
          );
          return { size: ids.length, kept: outcomes.filter((outcome) => outcome === 0).length, removed: outcomes.filter((outcome) => outcome === 1).length };
        });
        removed += batch.removed;
        if (batch.size < COLLECT_BATCH) return;
        offset += batch.kept;
      }
    });
    return removed;
  }

  /** Sessions in the shards' indexes; one that Redis expired leaves them at the next sweep. */
  count(): Promise<number> {
    return this.guard.run(async () => {
      const sizes = await Promise.all(Array.from({ length: REDIS_SHARDS }, (_, shard) => this.client.zcard(this.keys.accessIndex(shard))));
      return sizes.reduce((sum, size) => sum + size, 0);
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.locks.close();
    try {
      await this.client.quit();
    } catch {
      this.client.disconnect();
    }
  }
}

function toSessionData(fields: string[]): SessionData {
  const data = new Map<string, string>();
  for (let i = 0; i < fields.length; i += 2) {
    const field = fields[i]!;
    if (field.startsWith(VALUE_MARK)) data.set(field.slice(VALUE_MARK.length), fields[i + 1]!);
  }
  return data;
}

// Shards swept side by side, a few at a time: the sweep neither crawls nor floods Redis.
const SHARDS_AT_ONCE = 16;

async function forEachShard(work: (shard: number) => Promise<void>): Promise<void> {
  for (let first = 0; first < REDIS_SHARDS; first += SHARDS_AT_ONCE) {
    await Promise.all(Array.from({ length: Math.min(SHARDS_AT_ONCE, REDIS_SHARDS - first) }, (_, i) => work(first + i)));
  }
}
