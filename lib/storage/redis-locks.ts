import type { StorageGuard } from './guard.js';
import { LeaseLockManager, type LockAttempt } from './lease-locks.js';
import { connectRedis, duplicateRedisClient, LuaScript, type RedisClient, type RedisKeys } from './redis-client.js';

// KEYS: lock. ARGV: token, lease ms. Returns {1} when taken, else {0, ms left on the holder's lease}.
const ACQUIRE = new LuaScript(`
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {1} end
return {0, redis.call('PTTL', KEYS[1])}
`);

// KEYS: lock. ARGV: token, release channel. Compare-and-delete, then wake the waiters.
const RELEASE = new LuaScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[2], '')
return 1
`);

// KEYS: lock, data. ARGV: token, lease ms, session ttl ms. A held session must not expire under
// its writer: its TTL (own lifetime or the max lifetime) starts again with each renewal.
const RENEW = new LuaScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local own = redis.call('HGET', KEYS[2], '@lifetime')
redis.call('PEXPIRE', KEYS[2], own and tonumber(own) * 1000 or ARGV[3])
return 1
`);

/**
 * Writer locks in Redis: `<prefix>{id}:lock` holds the owner's token and expires with the
 * lease (SET NX PX); release is a compare-and-delete script that publishes on
 * `<prefix>{id}:released`, to which an instance subscribes while it has writers waiting.
 */
export class RedisLocks extends LeaseLockManager {
  private subscriber: RedisClient | null = null;

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

  protected async tryLock(sessionId: string, token: string): Promise<LockAttempt> {
    const [taken, ttl] = (await this.guard.run(() => ACQUIRE.run(this.redis, [this.keys.lock(sessionId)], [token, this.leaseMs]))) as [number, number?];
    if (taken === 1) return { acquired: true };
    // -1: a lock without expiry (set by hand); -2: gone already. Re-check within a lease either way.
    return { acquired: false, retryInMs: ttl! >= 0 ? ttl! : ttl === -2 ? 0 : this.leaseMs };
  }

  protected async unlock(sessionId: string, token: string): Promise<void> {
    await this.guard.run(() => RELEASE.run(this.redis, [this.keys.lock(sessionId)], [token, this.keys.releases(sessionId)]));
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
    this.subscriber?.disconnect();
    this.subscriber = null;
  }
}
