import { ConfigError } from '../core/errors.js';
import { LOG_FORMATS } from '../core/logger.js';
import { closestName } from './closest-name.js';
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
  /** PostgreSQL store: connections in its pool (one more listens for lock releases). Default 10. */
  postgresPoolSize?: number;
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

/**
 * Every key of SessionServerConfig, once: the config file check, `sessionserver config` and
 * the README read this list. (The type below fails to compile when a key is missing here.)
 */
export const CONFIG_KEYS = [
  'host', 'port', 'storage', 'savePath', 'fsync', 'lockTimeout', 'maxLifetime', 'gcInterval',
  'maxLineLength', 'maxConnections', 'idleTimeout', 'maxUnknownCommands', 'logLevel', 'logFormat', 'logger', 'commandsDir',
  'plugins', 'redisUrl', 'redisPrefix', 'redisWaitReplicas', 'postgresUrl', 'postgresTable', 'postgresPoolSize', 'lockLease', 'storageTimeout',
  'maxSessionSize', 'maxMemory', 'maxInputBuffer', 'tls', 'metrics', 'listSessionIds',
] as const satisfies ReadonlyArray<keyof SessionServerConfig>;

type UnlistedKeys = Exclude<keyof SessionServerConfig, (typeof CONFIG_KEYS)[number]>;
// A key added to SessionServerConfig must be added to CONFIG_KEYS too.
const everyKeyListed: [UnlistedKeys] extends [never] ? true : UnlistedKeys = true;
void everyKeyListed;

/** Keys of the nested objects, checked the same way. */
export const NESTED_CONFIG_KEYS = {
  tls: ['cert', 'key', 'ca', 'requestCert'],
  metrics: ['port', 'host'],
} as const satisfies { [K in 'tls' | 'metrics']: ReadonlyArray<keyof NonNullable<SessionServerConfig[K]>> };

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** setTimeout's longest delay: a longer one fires at once, the opposite of what was asked. */
const MAX_TIMER_MS = 2_147_483_647;
const MAX_TIMER_SECONDS = Math.floor(MAX_TIMER_MS / 1000);

/** The whole-number fields and their ranges (0 means "off" or "no limit" where the field says so). */
export const NUMBER_RANGES = {
  port: { min: 1, max: 65535 },
  lockTimeout: { min: 0, max: MAX_TIMER_MS },
  maxLifetime: { min: 0 },
  gcInterval: { min: 0, max: MAX_TIMER_SECONDS },
  maxLineLength: { min: 1 },
  maxConnections: { min: 1 },
  idleTimeout: { min: 0, max: MAX_TIMER_SECONDS },
  maxUnknownCommands: { min: 0 },
  lockLease: { min: 1, max: MAX_TIMER_MS },
  postgresPoolSize: { min: 1, max: 10_000 },
  storageTimeout: { min: 0, max: MAX_TIMER_MS },
  maxSessionSize: { min: 1 },
  maxMemory: { min: 0 },
  maxInputBuffer: { min: 0 },
  redisWaitReplicas: { min: 0 },
} as const satisfies Partial<Record<keyof SessionServerConfig, { min: number; max?: number }>>;

export type NumberField = keyof typeof NUMBER_RANGES;

/** What a value of `field` must be, as the end of a sentence: `must be an integer between 1 and 65535`. */
export function numberRequirement(range: { min: number; max?: number }): string {
  return range.max === undefined ? `must be an integer >= ${range.min}` : `must be an integer between ${range.min} and ${range.max}`;
}

/** True when `value` fits `range`. */
export function fitsRange(value: unknown, range: { min: number; max?: number }): boolean {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= range.min && (range.max === undefined || value <= range.max);
}

function shown(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}

function unknownKey(source: string, key: string, known: readonly string[], prefix = ''): ConfigError {
  const suggestion = closestName(key, known);
  return new ConfigError(`${source}: unknown key "${prefix}${key}"${suggestion ? ` (did you mean "${prefix}${suggestion}"?)` : ''}`);
}

/** Refuses a configuration that would start a broken server, naming the field and the source. */
export function validateConfig(config: SessionServerConfig, source = 'configuration'): SessionServerConfig {
  if (typeof config !== 'object' || config === null) throw new ConfigError(`${source}: expected an object`);
  for (const key of Object.keys(config)) {
    if (!(CONFIG_KEYS as readonly string[]).includes(key)) throw unknownKey(source, key, CONFIG_KEYS);
  }
  for (const [parent, keys] of Object.entries(NESTED_CONFIG_KEYS) as Array<[keyof typeof NESTED_CONFIG_KEYS, readonly string[]]>) {
    const nested = config[parent];
    if (nested === undefined) continue;
    if (typeof nested !== 'object' || nested === null) throw new ConfigError(`${source}: ${parent} must be an object`);
    for (const key of Object.keys(nested)) if (!keys.includes(key)) throw unknownKey(source, key, keys, `${parent}.`);
  }
  for (const [field, range] of Object.entries(NUMBER_RANGES) as Array<[NumberField, { min: number; max?: number }]>) {
    const value = config[field];
    if (value !== undefined && !fitsRange(value, range)) throw new ConfigError(`${source}: ${field} ${numberRequirement(range)}, got ${shown(value)}`);
  }
  if (config.metrics !== undefined && !fitsRange(config.metrics.port, NUMBER_RANGES.port)) {
    throw new ConfigError(`${source}: metrics.port ${numberRequirement(NUMBER_RANGES.port)}, got ${shown(config.metrics.port)}`);
  }
  for (const field of ['host', 'savePath', 'commandsDir', 'redisUrl', 'redisPrefix', 'postgresUrl', 'postgresTable'] as const) {
    const value = config[field];
    if (value !== undefined && (typeof value !== 'string' || value === '')) throw new ConfigError(`${source}: ${field} must be a non-empty string`);
  }
  if (config.logFormat !== undefined && !(LOG_FORMATS as readonly unknown[]).includes(config.logFormat)) {
    throw new ConfigError(`${source}: logFormat must be one of ${LOG_FORMATS.join(', ')}, got ${shown(config.logFormat)}`);
  }
  if (config.logLevel !== undefined && !(LOG_LEVELS as readonly unknown[]).includes(config.logLevel)) {
    throw new ConfigError(`${source}: logLevel must be one of ${LOG_LEVELS.join(', ')}, got ${shown(config.logLevel)}`);
  }
  return config;
}
