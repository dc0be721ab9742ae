import type { StorageGuard } from './guard.js';
import { LeaseLockManager, type LockAttempt } from './lease-locks.js';
import { connectRedis, duplicateRedisClient, LuaScript, type RedisClient, type RedisKeys } from './redis-client.js';

/** Hash fields the driver keeps beside the values (which carry a leading `=`). */
export const ACCESS_FIELD = '@access';
export const LIFETIME_FIELD = '@lifetime';

/** Sets the session's TTL: its own lifetime (seconds) when it has one, else ARGV[ttlArg] ms. */
export const EXPIRE_LUA = (ttlArg: number) => `
local own = redis.call('HGET', KEYS[2], '${LIFETIME_FIELD}')
redis.call('PEXPIRE', KEYS[2], own and tonumber(own) * 1000 or ARGV[${ttlArg}])`;

// KEYS: lock, data, shard index, waiting flag. ARGV: token, lease ms, now ms, session ttl ms, id.
// Opening a session for writing in one round trip: take the lock and load (and touch) the session.
// Sent again with the same token (a reply lost in a failover), it finds the lock its own: taking a
// lock is idempotent per token, so a resent attempt never blocks its own owner for a lease.
// Taken: {1, fields} ({1} when the session does not exist). Held by another: {0, ms left on its
// lease}, and the waiting flag tells the holder's release to announce itself.
const ACQUIRE = new LuaScript(`
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
elseif holder then
  redis.call('SET', KEYS[4], '1', 'PX', ARGV[2] * 2)
  return {0, redis.call('PTTL', KEYS[1])}
else
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
local fields = redis.call('HGETALL', KEYS[2])
if #fields == 0 then return {1} end
redis.call('HSET', KEYS[2], '${ACCESS_FIELD}', ARGV[3])
${EXPIRE_LUA(4)}
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[5])
return {1, fields}
`);

// KEYS: lock, waiting flag. ARGV: token, release channel. Compare-and-delete; announced only
// when a writer flagged itself waiting.
const RELEASE = new LuaScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
if redis.call('DEL', KEYS[2]) == 1 then redis.call('PUBLISH', ARGV[2], '') end
return 1
`);

// KEYS: lock, data. ARGV: token, lease ms, session ttl ms. A held session must not expire under
// its writer: its TTL (own lifetime or the max lifetime) starts again with each renewal.
const RENEW = new LuaScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
${EXPIRE_LUA(3)}
return 1
`);

/** What a lock attempt loaded along the way: the session's hash fields, or null when it does not exist. */
interface Preloaded {
  token: string;
  fields: string[] | null;
}

/**
 * Writer locks in Redis: `<prefix>{shard}:<id>:lock` holds the owner's token and expires with
 * the lease. Taking it also loads the session (one round trip for `open … rw`; the store's
 * `load` that follows is served from that). A writer that finds it taken sets
 * `…:waiting`; a release (compare-and-delete) publishes on `…:released` only then, and an
 * instance subscribes to that channel while it has writers waiting.
 */
export class RedisLocks extends LeaseLockManager {
  private subscriber: RedisClient | null = null;
  private readonly preloaded = new Map<string, Preloaded>();

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: RedisKeys,
    leaseMs: number | undefined,
    /** The sessions' time to live, refreshed while a writer holds them. */
    private readonly sessionTtlMs: number,
    /** The store's: lock round trips are storage operations too, bounded in time. */
    private readonly guard: StorageGuard,
  ) {
    super(leaseMs);
  }

  /** Opens the connection that listens for releases (a subscribed connection can do nothing else). */
  async start(): Promise<void> {
    if (this.subscriber) return;
    const subscriber = duplicateRedisClient(this.redis);
    await connectRedis(subscriber, 'Redis (lock release subscriber)');
    subscriber.on('message', (channel: string) => {
      const id = this.keys.idOfReleases(channel);
      if (id !== undefined) this.released(id);
    });
    // Back after a disconnect (ioredis subscribes again by itself): releases may have been missed.
    subscriber.on('ready', () => this.wakeAll());
    this.subscriber = subscriber;
  }

  /**
   * The session as the lock attempt that this instance still holds loaded it: an array of hash
   * fields, null when it did not exist, undefined when there is none to give (then load it).
   * Given once: nobody else writes a session while this instance holds its writer lock.
   */
  takePreloaded(sessionId: string): string[] | null | undefined {
    const entry = this.preloaded.get(sessionId);
    if (!entry) return undefined;
    this.preloaded.delete(sessionId);
    return this.tokenOf(sessionId) === entry.token ? entry.fields : undefined;
  }

  /** Forgets a preloaded session (it is written or deleted now). */
  dropPreloaded(sessionId: string): void {
    this.preloaded.delete(sessionId);
  }

  protected async tryLock(sessionId: string, token: string): Promise<LockAttempt> {
    const of = this.keys.of(sessionId);
    const keys = [of.lock, of.data, of.accessIndex, of.waiting];
    const now = Date.now();
    const [taken, second] = (await this.guard.run(() => ACQUIRE.run(this.redis, keys, [token, this.leaseMs, now, this.sessionTtlMs, sessionId]))) as [number, (string[] | number)?];
    if (taken === 1) {
      this.preloaded.set(sessionId, { token, fields: Array.isArray(second) ? second : null });
      return { acquired: true };
    }
    const ttl = second as number;
    // -1: a lock without expiry (set by hand); -2: gone already. Re-check within a lease either way.
    return { acquired: false, retryInMs: ttl >= 0 ? ttl : ttl === -2 ? 0 : this.leaseMs };
  }

  protected async unlock(sessionId: string, token: string): Promise<void> {
    if (this.preloaded.get(sessionId)?.token === token) this.preloaded.delete(sessionId);
    const of = this.keys.of(sessionId);
    await this.guard.run(() => RELEASE.run(this.redis, [of.lock, of.waiting], [token, of.releases]));
  }

  protected async renew(locks: ReadonlyMap<string, string>): Promise<string[]> {
    // One script per lock: in a Cluster the locks live on different nodes.
    const results = await Promise.all(
      [...locks].map(([id, token]) =>
        this.guard.run(() => RENEW.run(this.redis, [this.keys.lock(id), this.keys.data(id)], [token, this.leaseMs, this.sessionTtlMs])).then(
          (renewed) => (renewed === 1 ? null : id),
          () => null,
        ),
      ),
    );
    return results.filter((id): id is string => id !== null);
  }

  protected async watch(sessionId: string): Promise<void> {
    if (!this.subscriber) throw new Error('RedisLocks.start() was not called');
    await this.subscriber.subscribe(this.keys.releases(sessionId));
  }

  protected async unwatch(sessionId: string): Promise<void> {
    await this.subscriber?.unsubscribe(this.keys.releases(sessionId));
  }

  override async close(): Promise<void> {
    await super.close();
    this.preloaded.clear();
    this.subscriber?.disconnect();
    this.subscriber = null;
  }
}
