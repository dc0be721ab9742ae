import type { LineServerOptions } from './line-server.js';
import type { SessionStore } from './storage/contract.js';

export type StorageName = 'memory' | 'filesystem';

/**
 * Everything sessionserver can be told, in one object: `sessionserver.config.ts`,
 * `new SessionServer(config)`, CLI flags and SESSIONSERVER_* variables all fill it.
 */
export interface SessionServerConfig extends LineServerOptions {
  /** A driver name or a ready store instance. Default `filesystem` on the CLI, `memory` in code. */
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
}

export const DEFAULTS = {
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
