import type { SessionServerConfig } from '../config/config.js';
import { DEFAULTS } from '../config/defaults.js';
import { ConfigError } from '../core/errors.js';
import type { SessionStore } from './contract.js';
import { FilesystemStore } from './filesystem.js';
import type { StorageLogger } from './guard.js';
import { MemoryStore } from './memory.js';
import { PostgresStore } from './postgres.js';
import { RedisStore } from './redis.js';

export const STORAGE_NAMES = ['memory', 'filesystem', 'redis', 'postgres'] as const;

export { StorageUnavailableError, isStorageUnavailable, type StorageLogger } from './guard.js';
export { MAX_LIFETIME_SECONDS, InvalidLifetimeError } from './lifetime.js';

/**
 * The store a configuration names; a store instance passes through unchanged. `log` (the
 * server's logger; default `config.logger`) hears when storage becomes unavailable and back.
 */
export function createStore(config: SessionServerConfig, log: StorageLogger | undefined = config.logger): SessionStore {
  const storage = config.storage ?? DEFAULTS.storage;
  if (typeof storage === 'object') return storage;
  const timeout = config.storageTimeout ?? DEFAULTS.storageTimeout;
  switch (storage) {
    case 'memory':
      return new MemoryStore({ maxMemory: config.maxMemory });
    case 'filesystem':
      return new FilesystemStore({ savePath: config.savePath ?? DEFAULTS.savePath, fsync: config.fsync, timeout, log });
    case 'redis':
      return new RedisStore({ url: config.redisUrl, prefix: config.redisPrefix, maxLifetime: config.maxLifetime, lockLease: config.lockLease, timeout, log });
    case 'postgres':
      return new PostgresStore({ url: config.postgresUrl, table: config.postgresTable, lockLease: config.lockLease, timeout, log });
    default:
      throw new ConfigError(`unknown storage "${String(storage)}" (expected one of: ${STORAGE_NAMES.join(', ')})`);
  }
}
