import { ConfigError } from './errors.js';
import type { LineServerOptions } from './line-server.js';
import type { SessionStore } from './storage/contract.js';

export type StorageName = 'memory' | 'filesystem';

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

export const DEFAULTS = {
  storage: 'filesystem',
  host: '127.0.0.1',
  port: 9090,
  savePath: './sessions',
  lockTimeout: 10_000,
  maxLifetime: 1440,
  gcInterval: 60,
} as const;

/** Typed identity for `sessionserver.config.ts`: `export default defineConfig({ … })`. */
export function defineConfig(config: SessionServerConfig): SessionServerConfig {
  return config;
}

const WHOLE_NUMBER_FIELDS = [
  'port', 'lockTimeout', 'maxLifetime', 'gcInterval', 'maxLineLength', 'maxConnections', 'idleTimeout', 'maxUnknownCommands',
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
