import { ConfigError } from '../core/errors.js';
export { DEFAULTS } from './defaults.js';
import type { LineServerOptions } from '../core/line-server.js';
import type { SessionStore } from '../storage/contract.js';

export type StorageName = 'memory' | 'filesystem' | 'redis' | 'postgres';

/**
 * Everything sessionserver can be told, in one object: `sessionserver.config.ts`,
 * `new SessionServer(config)`, CLI flags and SESSIONSERVER_* variables all fill it.
 */
export interface SessionServerConfig extends LineServerOptions {
  /** A driver name or a ready store instance. Default `filesystem` (nothing to install). */
  storage?: StorageName | SessionStore;
  /** Folder of the filesystem store. Default `./sessions`. */
  savePath?: string;
  /** fsync every write of the filesystem store (survives power loss). Default false. */
  fsync?: boolean;
  /** Milliseconds a writer waits for a locked session before `err Session is locked`. Default 10000. */
  lockTimeout?: number;
  /**
   * Redis store: `redis://[user:password@]host:port[/db]`, `rediss://…` (TLS),
   * `redis+sentinel://host:26379,host:26380/<master>[/db]` or `redis+cluster://host:7000,host:7001`.
   * Default `redis://127.0.0.1:6379`.
   */
  redisUrl?: string;
  /** Redis store: put before every key, so deployments can share one Redis. Default `sessionserver:`. */
  redisPrefix?: string;
  /** PostgreSQL store: `postgres://user:password@host:port/database`. Default: pg's PG* environment variables. */
  postgresUrl?: string;
  /** PostgreSQL store: the sessions table, `name` or `schema.name`. Default `sessionserver_sessions`. */
  postgresTable?: string;
  /**
   * Redis and PostgreSQL stores: milliseconds a writer lock outlives its instance (renewed
   * while held), so a killed instance's locks free themselves within it. Default 10000.
   */
  lockLease?: number;
  /**
   * Milliseconds any one storage operation may take; past it the command answers
   * `err Storage unavailable` and the server keeps serving everything else. Default 1000.
   */
  storageTimeout?: number;
  /** Bytes one session may hold (keys and values, UTF-8); a write past it gets `err Session too large (limit N bytes)`. Default 16 MiB. */
  maxSessionSize?: number;
  /**
   * Memory store: bytes of session data it may hold in all; writes past it get an `err`,
   * reads go on (like Redis maxmemory with noeviction). Default: a quarter of the V8 heap limit.
   */
  maxMemory?: number;
  /** Bytes of unfinished request lines buffered across all connections; past it reading pauses. Default 256 MiB. */
  maxInputBuffer?: number;
  /** Serve TLS only (PEM file paths); with `ca`, clients must present a certificate it signed (mutual TLS). */
  tls?: { cert: string; key: string; ca?: string; requestCert?: boolean };
  /** Prometheus metrics and `/healthz` over HTTP on a separate port; none when unset. Host default 127.0.0.1. */
  metrics?: { port: number; host?: string };
  /** `pretty` (coloured lines) or `json`; default pretty when stdout is a terminal, else json. */
  logFormat?: 'json' | 'pretty';
  /** Redis store: replicas that must acknowledge a write before `close`/`commit` answer ok (Redis WAIT). Default 0. */
  redisWaitReplicas?: number;
  /** Seconds without access after which a session is collected. Default 1440. */
  maxLifetime?: number;
  /** Seconds between expiry sweeps; 0 disables the sweep (`gc` still works). Default 60. */
  gcInterval?: number;
  /**
   * Allow the `ids` command, which lists every session id. A session id is a credential:
   * anyone who can run `ids` can open any session. Enable it only where every client is
   * trusted (or the auth plugin restricts who connects). Default false.
   */
  listSessionIds?: boolean;
}


/** Typed identity for `sessionserver.config.ts`: `export default defineConfig({ … })`. */
export function defineConfig(config: SessionServerConfig): SessionServerConfig {
  return config;
}

const WHOLE_NUMBER_FIELDS = [
  'port', 'lockTimeout', 'maxLifetime', 'gcInterval', 'maxLineLength', 'maxConnections', 'idleTimeout', 'maxUnknownCommands', 'lockLease',
  'storageTimeout', 'maxSessionSize', 'maxMemory', 'maxInputBuffer', 'redisWaitReplicas',
] as const;

/** Refuses a configuration that would start a broken server, naming the field and the source. */
export function validateConfig(config: SessionServerConfig, source = 'configuration'): SessionServerConfig {
  if (typeof config !== 'object' || config === null) throw new ConfigError(`${source}: expected an object`);
  for (const field of WHOLE_NUMBER_FIELDS) {
    const value = config[field];
    if (value !== undefined && (!Number.isSafeInteger(value) || value < 0)) {
      throw new ConfigError(`${source}: ${field} must be a whole number >= 0, got ${typeof value === 'string' ? JSON.stringify(value) : String(value)}`);
    }
  }
  if (config.port !== undefined && config.port > 65535) throw new ConfigError(`${source}: port must be <= 65535`);
  if (config.host !== undefined && (typeof config.host !== 'string' || config.host === '')) {
    throw new ConfigError(`${source}: host must be a non-empty string`);
  }
  return config;
}
