import { DEFAULTS } from '../config/defaults.js';
import { ConfigError, StoreError } from '../core/errors.js';
import { isValidSessionId } from '../protocol/session-id.js';
import type { SessionData, SessionExpiry, SessionStore } from './contract.js';
import { StorageGuard, type StorageLogger } from './guard.js';
import { checkLifetime } from './lifetime.js';
import { connectRedis, createRedisClient, DEFAULT_REDIS_URL, isRedisUnavailable, LuaScript, RedisKeys, type RedisClient } from './redis-client.js';
import { RedisLocks } from './redis-locks.js';

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
}

// A session is a hash: user keys carry a `=` before them, so no key can collide with ours.
const VALUE_MARK = '=';
const ACCESS_FIELD = '@access';
const LIFETIME_FIELD = '@lifetime';
const COLLECT_BATCH = 500;

// Every access sets the key's TTL: its own lifetime (seconds) when it has one, else ARGV[ttlArg].
const EXPIRE = (ttlArg: number) => `
local own = redis.call('HGET', KEYS[1], '${LIFETIME_FIELD}')
redis.call('PEXPIRE', KEYS[1], own and tonumber(own) * 1000 or ARGV[${ttlArg}])`;

// KEYS: data. ARGV: now ms, ttl ms. The session's fields, or nil when it does not exist.
const LOAD = new LuaScript(`
local fields = redis.call('HGETALL', KEYS[1])
if #fields == 0 then return false end
redis.call('HSET', KEYS[1], '${ACCESS_FIELD}', ARGV[1])
${EXPIRE(2)}
return fields
`);

// KEYS: data, lock. ARGV: writer's lock token ('' = unfenced), now ms, ttl ms, field, value, …
// A writer whose lease ran out (and may have been taken over) must not overwrite the new holder.
// The session keeps its own lifetime.
const SAVE = new LuaScript(`
if ARGV[1] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
local own = redis.call('HGET', KEYS[1], '${LIFETIME_FIELD}')
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], '${ACCESS_FIELD}', ARGV[2])
if own then redis.call('HSET', KEYS[1], '${LIFETIME_FIELD}', own) end
for i = 4, #ARGV, 1000 do
  redis.call('HSET', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
redis.call('PEXPIRE', KEYS[1], own and tonumber(own) * 1000 or ARGV[3])
return 1
`);

// KEYS: data. ARGV: now ms, ttl ms.
const TOUCH = new LuaScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], '${ACCESS_FIELD}', ARGV[1])
${EXPIRE(2)}
return 1
`);

// KEYS: data. ARGV: now ms, ttl ms, own lifetime in seconds ('' = back to the max lifetime).
const SET_LIFETIME = new LuaScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[3] == '' then redis.call('HDEL', KEYS[1], '${LIFETIME_FIELD}')
else redis.call('HSET', KEYS[1], '${LIFETIME_FIELD}', ARGV[3]) end
redis.call('HSET', KEYS[1], '${ACCESS_FIELD}', ARGV[1])
${EXPIRE(2)}
return 1
`);

// KEYS: data, lock. ARGV: cutoff ms, now ms. 1 collected, 0 kept, -1 gone already.
// Kept: write-locked on any instance, used since the cutoff, or within its own lifetime.
const COLLECT = new LuaScript(`
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local fields = redis.call('HMGET', KEYS[1], '${ACCESS_FIELD}', '${LIFETIME_FIELD}')
if not fields[1] then return -1 end
local access = tonumber(fields[1])
if fields[2] then
  if access + tonumber(fields[2]) * 1000 > tonumber(ARGV[2]) then return 0 end
elseif access >= tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
return 1
`);

// KEYS: access index. ARGV: cutoff ms, id, … Drops the ids not accessed again since the cutoff.
const UNINDEX = new LuaScript(`
local removed = 0
for i = 2, #ARGV do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) < tonumber(ARGV[1]) then removed = removed + redis.call('ZREM', KEYS[1], ARGV[i]) end
end
return removed
`);

/**
 * Sessions in Redis (single server, Sentinel or Cluster), shared by any number of
 * sessionserver instances. Each session is a hash `<prefix>{id}` that Redis expires by
 * itself `maxLifetime` (or the session's own lifetime) after the last access; every write
 * replaces it whole in one Lua script. A sorted set `<prefix>access` (id → last access)
 * lets `gc` find sessions idle for less than the lifetime and keeps `count` cheap.
 * Writer locks: see RedisLocks.
 */
export class RedisStore implements SessionStore {
  readonly name = 'redis';
  readonly locks: RedisLocks;
  readonly keys: RedisKeys;
  readonly client: RedisClient;
  /** Bounds every operation in time and reports outages. */
  readonly guard: StorageGuard;
  private readonly ttlMs: number;
  private closed = false;

  constructor(options: RedisStoreOptions = {}) {
    const maxLifetime = options.maxLifetime ?? DEFAULTS.maxLifetime;
    if (!Number.isSafeInteger(maxLifetime) || maxLifetime < 1) throw new ConfigError('the redis store needs maxLifetime >= 1 second');
    this.ttlMs = maxLifetime * 1000;
    this.keys = new RedisKeys(options.prefix);
    const timeoutMs = options.timeout ?? DEFAULTS.storageTimeout;
    this.guard = new StorageGuard({ storage: this.name, timeoutMs, log: options.log, isUnavailable: isRedisUnavailable });
    this.client = createRedisClient(options.url ?? DEFAULT_REDIS_URL, { timeoutMs });
    this.locks = new RedisLocks(this.client, this.keys, options.lockLease, this.ttlMs, this.guard);
  }

  async open(): Promise<void> {
    await connectRedis(this.client, 'Redis');
    await this.locks.start();
  }

  load(id: string): Promise<SessionData | undefined> {
    return this.guard.run(async () => {
      const now = Date.now();
      const [fields] = await Promise.all([
        LOAD.run(this.client, [this.keys.data(id)], [now, this.ttlMs]) as Promise<string[] | null>,
        this.client.zadd(this.keys.accessIndex, 'XX', now, id),
      ]);
      if (!fields) return undefined;
      const data = new Map<string, string>();
      for (let i = 0; i < fields.length; i += 2) {
        const field = fields[i]!;
        if (field.startsWith(VALUE_MARK)) data.set(field.slice(VALUE_MARK.length), fields[i + 1]!);
      }
      return data;
    });
  }

  save(id: string, data: SessionData): Promise<void> {
    return this.guard.run(async () => {
      const now = Date.now();
      const args: Array<string | number> = [this.locks.tokenOf(id) ?? '', now, this.ttlMs];
      for (const [key, value] of data) args.push(VALUE_MARK + key, value);
      const [written] = await Promise.all([
        SAVE.run(this.client, [this.keys.data(id), this.keys.lock(id)], args),
        this.client.zadd(this.keys.accessIndex, now, id),
      ]);
      if (written !== 1) throw new StoreError('not written: the writer lock on this session was lost (its lease ran out)');
    });
  }

  destroy(id: string): Promise<boolean> {
    return this.guard.run(async () => {
      const [deleted] = await Promise.all([this.client.del(this.keys.data(id)), this.client.zrem(this.keys.accessIndex, id)]);
      return deleted === 1;
    });
  }

  touch(id: string): Promise<boolean> {
    return this.guard.run(async () => {
      const now = Date.now();
      const [touched] = await Promise.all([
        TOUCH.run(this.client, [this.keys.data(id)], [now, this.ttlMs]),
        this.client.zadd(this.keys.accessIndex, 'XX', now, id),
      ]);
      return touched === 1;
    });
  }

  setLifetime(id: string, seconds: number | null): Promise<boolean> {
    return this.guard.run(async () => {
      checkLifetime(seconds);
      const now = Date.now();
      const [set] = await Promise.all([
        SET_LIFETIME.run(this.client, [this.keys.data(id)], [now, this.ttlMs, seconds === null ? '' : seconds]),
        this.client.zadd(this.keys.accessIndex, 'XX', now, id),
      ]);
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

  /** Walks the index; entries of sessions Redis has expired are left out. */
  async ids(): Promise<string[]> {
    const ids: string[] = [];
    // Each batch within the timeout: a long listing goes on as long as Redis answers.
    for (let offset = 0; ; offset += COLLECT_BATCH) {
      const found = await this.guard.run(async () => {
        const batch = await this.client.zrange(this.keys.accessIndex, String(offset), String(offset + COLLECT_BATCH - 1));
        const valid = batch.filter(isValidSessionId);
        const exists = await Promise.all(valid.map((id) => this.client.exists(this.keys.data(id))));
        return { more: batch.length > 0, ids: valid.filter((_, i) => exists[i] === 1) };
      });
      if (!found.more) return ids;
      ids.push(...found.ids);
    }
  }

  /**
   * Walks the index from the oldest access up to the cutoff. Each candidate is checked and
   * deleted by one script on its own slot (skipped while write-locked on any instance);
   * index entries of sessions Redis already expired are dropped on the way.
   */
  async collect(maxIdleMs: number, isHeld: (id: string) => boolean): Promise<number> {
    const now = Date.now();
    const cutoff = now - maxIdleMs;
    let removed = 0;
    let offset = 0;
    // Each batch within the timeout: a long sweep goes on as long as Redis answers.
    for (;;) {
      const batch = await this.guard.run(async () => {
        const ids = await this.client.zrangebyscore(this.keys.accessIndex, '-inf', `(${cutoff}`, 'LIMIT', offset, COLLECT_BATCH);
        const outcomes = await Promise.all(
          ids.map((id) => {
            if (!isValidSessionId(id)) return -1;
            if (isHeld(id)) return 0;
            return COLLECT.run(this.client, [this.keys.data(id), this.keys.lock(id)], [cutoff, now]) as Promise<number>;
          }),
        );
        const gone = ids.filter((_, i) => outcomes[i] !== 0);
        if (gone.length > 0) await UNINDEX.run(this.client, [this.keys.accessIndex], [cutoff, ...gone]);
        return { size: ids.length, gone: gone.length, removed: outcomes.filter((outcome) => outcome === 1).length };
      });
      if (batch.size === 0) return removed;
      removed += batch.removed;
      offset += batch.size - batch.gone;
    }
  }

  /** Sessions in the index; one that Redis expired leaves it at the next sweep. */
  count(): Promise<number> {
    return this.guard.run(() => this.client.zcard(this.keys.accessIndex));
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
