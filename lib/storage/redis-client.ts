import { createHash } from 'node:crypto';
import type { Writable } from 'node:stream';
import { Cluster, Redis, ReplyError, type ClusterNode, type RedisOptions } from 'ioredis';
import { ConfigError, StoreError } from '../core/errors.js';
import { isValidSessionId } from '../protocol/session-id.js';
import { DEFAULTS } from '../config/defaults.js';

/** A single Redis (also behind Sentinel) or a Redis Cluster: the drivers use only what both offer. */
export type RedisClient = Redis | Cluster;

export const DEFAULT_REDIS_URL: string = DEFAULTS.redisUrl;
export const DEFAULT_REDIS_PREFIX: string = DEFAULTS.redisPrefix;

// No glob characters (the prefix may appear in SCAN patterns) and no braces (hash tags are ours).
const VALID_PREFIX = /^[A-Za-z0-9:_.-]{0,64}$/;

const COMMON_OPTIONS = {
  lazyConnect: true,
} as const;

// A Cluster routes each command to its slot's node; its auto-pipelines batch per node.
const CLUSTER_OPTIONS = {
  ...COMMON_OPTIONS,
  enableAutoPipelining: true,
} as const;

// After a dropped connection, try again soon: the server answers `err` meanwhile, so a
// short pause costs nothing, and a restarted Redis serves again within about a second.
const MAX_RECONNECT_DELAY_MS = 1000;

/**
 * Fail fast, recover alone. A connection that owes answers and gets no data for `timeoutMs`
 * is dropped and opened anew (as redis-py does on a socket timeout), which fails the commands
 * still waiting on it. The store's operations are bounded by its StorageGuard (the client
 * reads `err Storage unavailable` after `timeoutMs`), so no command carries a timer of its own
 * (ioredis' `commandTimeout`: a timer per command, and a `delete` that slows the command
 * object). While no connection is up, commands fail at once instead of queuing without
 * bound, and commands in flight on a connection that drops fail rather than being sent again.
 */
function nodeOptions(timeoutMs: number): RedisOptions {
  const bound = timeoutMs > 0 ? timeoutMs : undefined;
  return {
    socketTimeout: bound,
    connectTimeout: bound ?? 10_000,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: (times: number) => Math.min(50 * 2 ** (times - 1), MAX_RECONNECT_DELAY_MS) + Math.floor(Math.random() * 50),
  };
}

export interface RedisClientOptions {
  /** Milliseconds a connection that owes answers may stay silent before it is dropped (`storageTimeout`); 0 waits forever. Default 1000. */
  timeoutMs?: number;
}

/**
 * A client for a Redis URL:
 * - `redis://[user:password@]host:port[/db]`, `rediss://…` (TLS): one server;
 * - `redis+sentinel://[user:password@]host:port,host:port/<master name>[/db][?sentinelPassword=…]`
 *   (`rediss+sentinel://` for TLS): the master a Sentinel group names, followed across failovers;
 * - `redis+cluster://[user:password@]host:port,host:port` (`rediss+cluster://`): a Redis Cluster,
 *   found from any of its nodes.
 */
export function createRedisClient(url: string, clientOptions: RedisClientOptions = {}): RedisClient {
  const perNode = nodeOptions(clientOptions.timeoutMs ?? DEFAULTS.storageTimeout);
  const match = /^(rediss?)\+(cluster|sentinel):\/\/(?:([^@/]*)@)?([^/?#]+)(\/[^?#]*)?(?:\?([^#]*))?$/.exec(url);
  if (!match) {
    if (!/^rediss?:\/\//.test(url)) throw new ConfigError('redisUrl must start with redis://, rediss://, redis+sentinel:// or redis+cluster://');
    return new Redis(url, { ...COMMON_OPTIONS, ...perNode });
  }
  const [, scheme, kind, userInfo, hostList, path = '', query = ''] = match;
  const tls = scheme === 'rediss' ? {} : undefined;
  const [username, password] = parseUserInfo(userInfo);
  const nodes = hostList!.split(',').map(parseHostPort);
  const params = new URLSearchParams(query);
  if (kind === 'cluster') {
    if (path !== '' && path !== '/') throw new ConfigError('redis+cluster:// URLs take no database number (a cluster has only db 0)');
    return new Cluster(nodes, {
      ...CLUSTER_OPTIONS,
      // Without a reachable node a command fails at once instead of queuing.
      enableOfflineQueue: false,
      redisOptions: { ...perNode, username, password, tls },
    });
  }
  const [, name, db] = path.split('/');
  if (!name) throw new ConfigError('redis+sentinel:// URLs need the master name as their path: redis+sentinel://host:26379/mymaster');
  if (db !== undefined && !/^\d+$/.test(db)) throw new ConfigError('the database in a redis+sentinel:// URL must be a number');
  const options: RedisOptions = {
    ...COMMON_OPTIONS,
    ...perNode,
    sentinels: nodes,
    name: decodeURIComponent(name),
    username,
    password,
    db: db === undefined ? 0 : Number(db),
    sentinelPassword: params.get('sentinelPassword') ?? undefined,
    tls,
    enableTLSForSentinelMode: tls !== undefined,
  };
  return new Redis(options);
}

function parseUserInfo(userInfo: string | undefined): [string | undefined, string | undefined] {
  if (!userInfo) return [undefined, undefined];
  const colon = userInfo.indexOf(':');
  if (colon === -1) return [undefined, decodeURIComponent(userInfo)];
  const username = decodeURIComponent(userInfo.slice(0, colon));
  return [username === '' ? undefined : username, decodeURIComponent(userInfo.slice(colon + 1))];
}

function parseHostPort(text: string): ClusterNode & { host: string; port: number } {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+))(?::(\d{1,5}))?$/.exec(text.trim());
  if (!match) throw new ConfigError(`invalid host in Redis URL: ${JSON.stringify(text)}`);
  return { host: match[1] ?? match[2]!, port: match[3] ? Number(match[3]) : 6379 };
}

// Replies that mean "not now" rather than "wrong request": out of memory, still loading, a
// replica or a failover (a redirection that could not be followed, to a dead master), a busy
// script, credentials that no longer work.
const UNAVAILABLE_REPLY = /^(OOM|LOADING|READONLY|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|MOVED|ASK|BUSY|NOREPLICAS|NOAUTH|WRONGPASS)\b/;

/**
 * True when an error of the Redis client means Redis cannot serve now: no connection, no
 * answer in time, or a reply such as OOM or LOADING. A refused request (a bug) is not one.
 */
export function isRedisUnavailable(error: unknown): boolean {
  if (!(error instanceof Error) || error instanceof StoreError) return false;
  if (error instanceof ReplyError) return UNAVAILABLE_REPLY.test(error.message);
  return true;
}

/** A second connection to the same Redis, with the same options (for subscribing). */
export function duplicateRedisClient(client: RedisClient): RedisClient {
  return client instanceof Cluster ? client.duplicate() : client.duplicate();
}

/** Connects a lazily created client, turning a refusal into one clear StoreError. */
export async function connectRedis(client: RedisClient, what: string): Promise<void> {
  let lastError: Error | undefined;
  const onError = (error: Error) => (lastError = error);
  client.on('error', onError);
  try {
    await client.connect();
    // A cluster reports ready before its slots are known; one command proves it serves.
    await client.ping();
  } catch (error) {
    client.disconnect();
    const cause = lastError ?? (error as Error);
    throw new StoreError(`cannot connect to ${what}: ${cause.message}`);
  }
}

/**
 * The version of the key layout and lock protocol below. Every instance on one prefix must
 * speak the same one: the store records it in `<prefix>layout` and refuses to open beside
 * another (RedisStore.open). Bump it whenever keys, scripts or the lock protocol change.
 * 1 (no `layout` key): `<prefix>{id}` per session and one shared `<prefix>access` index.
 */
export const REDIS_LAYOUT_VERSION = 2;

/** Index shards: each session belongs to one, named by hash tag, so its keys share the shard's slot. */
export const REDIS_SHARDS = 256;

/** One session's keys (see RedisKeys). */
export interface SessionKeys {
  data: string;
  lock: string;
  waiting: string;
  releases: string;
  accessIndex: string;
}

/**
 * Where the Redis driver keeps a session. A session's keys and the access index of its shard
 * all carry the shard's hash tag (`{17}`), so one Lua script on one slot opens (lock, load,
 * touch, index) or closes (write, index, unlock, wake waiters) a session, in a Cluster too:
 * a session depends only on the master that owns its shard, and no key is shared by all.
 */
export class RedisKeys {
  /** Records the layout version of the instances on this prefix. */
  readonly layout: string;
  /** Where layout 1 kept its one access index: present while (or after) a layout-1 instance ran. */
  readonly layoutOneIndex: string;

  constructor(readonly prefix: string = DEFAULT_REDIS_PREFIX) {
    if (!VALID_PREFIX.test(prefix)) throw new ConfigError('redisPrefix may hold only letters, digits and : _ . - (at most 64)');
    this.layout = `${prefix}layout`;
    this.layoutOneIndex = `${prefix}access`;
  }

  /** The session's shard, 0 to REDIS_SHARDS - 1 (FNV-1a of the id). */
  shardOf(id: string): number {
    let hash = 0x811c9dc5;
    for (let i = 0; i < id.length; i++) hash = Math.imul(hash ^ id.charCodeAt(i), 0x01000193);
    return (hash >>> 0) % REDIS_SHARDS;
  }

  /** All of a session's keys, the id checked and hashed once. */
  of(id: string): SessionKeys {
    const shard = this.shardOf(this.checked(id));
    const data = `${this.prefix}{${shard}}:${id}`;
    return { data, lock: data + ':lock', waiting: data + ':waiting', releases: data + ':released', accessIndex: this.accessIndex(shard) };
  }

  /** The session's values (a hash). */
  data(id: string): string {
    return this.tag(id);
  }

  /** The session's writer lock: the owner's token, expiring with the lease. */
  lock(id: string): string {
    return `${this.tag(id)}:lock`;
  }

  /** Set by a writer that found the lock taken: its release must be announced. */
  waiting(id: string): string {
    return `${this.tag(id)}:waiting`;
  }

  /** The pub/sub channel on which releases of the session's lock are announced. */
  releases(id: string): string {
    return `${this.tag(id)}:released`;
  }

  /** A shard's index of last accesses (sorted set: id → ms), for gc, count and ids. */
  accessIndex(shard: number): string {
    return `${this.prefix}{${shard}}access`;
  }

  /** The index of the session's shard. */
  accessIndexOf(id: string): string {
    return this.accessIndex(this.shardOf(id));
  }

  /** The session id a release channel belongs to, or undefined for a foreign channel. */
  idOfReleases(channel: string): string | undefined {
    const match = /^(.*)\{(\d+)\}:([^{}]+):released$/.exec(channel);
    if (!match || match[1] !== this.prefix || !isValidSessionId(match[3]!)) return undefined;
    return this.shardOf(match[3]!) === Number(match[2]) ? match[3] : undefined;
  }

  private tag(id: string): string {
    return `${this.prefix}{${this.shardOf(this.checked(id))}}:${id}`;
  }

  private checked(id: string): string {
    // Defence in depth: the server validates ids, but here one becomes part of a key.
    if (!isValidSessionId(id)) throw new StoreError('invalid session id reached the redis store');
    return id;
  }
}

/** EVALSHA/EVAL with keys and arguments as arrays, which ioredis flattens (its typings want them spread). */
interface ScriptCalls {
  evalsha(sha: string, numKeys: number, keys: string[], args: Array<string | number>): Promise<unknown>;
  eval(source: string, numKeys: number, keys: string[], args: Array<string | number>): Promise<unknown>;
}

/** A Lua script run by its SHA1, sent in full only when the server does not know it yet. */
export class LuaScript {
  private readonly sha: string;

  constructor(private readonly source: string) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  run(client: RedisClient, keys: string[], args: Array<string | number>): Promise<unknown> {
    batchWrites(client);
    // The arrays as they are: ioredis flattens its arguments anyway (no spread copies here).
    const scripts = client as unknown as ScriptCalls;
    return scripts.evalsha(this.sha, keys.length, keys, args).catch((error: unknown) => {
      if (!isNoScript(error)) throw error;
      return scripts.eval(this.source, keys.length, keys, args);
    });
  }

  /**
   * Runs the script, then `WAIT replicas waitMs` on the same connection in the same round trip
   * (a pipeline goes to the node that owns the keys' slot, in a Cluster too). Resolves with the
   * script's result and how many replicas acknowledged the write.
   */
  async runAndWait(client: RedisClient, keys: string[], args: Array<string | number>, replicas: number, waitMs: number): Promise<[unknown, number]> {
    const once = async (bySha: boolean): Promise<[unknown, number]> => {
      const pipeline = client.pipeline();
      if (bySha) pipeline.evalsha(this.sha, keys.length, ...keys, ...args);
      else pipeline.eval(this.source, keys.length, ...keys, ...args);
      pipeline.wait(replicas, waitMs);
      const replies = (await pipeline.exec()) ?? [];
      const [scriptError, result] = replies[0] ?? [new Error('no reply to the script')];
      if (scriptError) throw scriptError;
      const [waitError, acknowledged] = replies[1] ?? [new Error('no reply to WAIT')];
      if (waitError) throw waitError;
      return [result, Number(acknowledged)];
    };
    try {
      return await once(true);
    } catch (error) {
      if (!isNoScript(error)) throw error;
      return once(false);
    }
  }
}

// Single-node connections whose writes are held back until the end of this event-loop turn.
const corked = new Set<Writable>();

/**
 * Batches the commands sent to one Redis within one turn of the event loop into one socket
 * write (what ioredis' auto-pipelining does, without a Pipeline object and its promises per
 * command): the first command of the turn corks the connection, the check phase uncorks it.
 * Many clients' requests read in one turn then cost Redis one read, and us one write.
 * A Cluster is auto-pipelined by ioredis instead (per node).
 */
function batchWrites(client: RedisClient): void {
  if (client instanceof Cluster || client.status !== 'ready') return;
  const stream = client.stream;
  if (corked.has(stream)) return;
  stream.cork();
  corked.add(stream);
  if (corked.size === 1) setImmediate(uncorkAll);
}

function uncorkAll(): void {
  for (const stream of corked) stream.uncork();
  corked.clear();
}

function isNoScript(error: unknown): boolean {
  return String((error as Error | null)?.message).startsWith('NOSCRIPT');
}
