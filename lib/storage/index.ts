import type { SessionServerConfig } from '../config/config.js';
import { DEFAULTS } from '../config/defaults.js';
import { ConfigError } from '../core/errors.js';
import type { SessionStore } from './contract.js';
import { FilesystemStore } from './filesystem.js';
import { MemoryStore } from './memory.js';
import { PostgresStore } from './postgres.js';
import { RedisStore } from './redis.js';

export const STORAGE_NAMES = ['memory', 'filesystem', 'redis', 'postgres'] as const;

/** The store a configuration names; a store instance passes through unchanged. */
export function createStore(config: SessionServerConfig): SessionStore {
  const storage = config.storage ?? DEFAULTS.storage;
  if (typeof storage === 'object') return storage;
  switch (storage) {
    case 'memory':
      return new MemoryStore();
    case 'filesystem':
      return new FilesystemStore({ savePath: config.savePath ?? DEFAULTS.savePath, fsync: config.fsync });
    case 'redis':
      return new RedisStore({ url: config.redisUrl, prefix: config.redisPrefix, maxLifetime: config.maxLifetime, lockLease: config.lockLease });
    case 'postgres':
      return new PostgresStore({ url: config.postgresUrl, table: config.postgresTable, lockLease: config.lockLease });
    default:
      throw new ConfigError(`unknown storage "${String(storage)}" (expected one of: ${STORAGE_NAMES.join(', ')})`);
  }
}
