import type { SessionServerConfig } from '../config/config.js';
import { DEFAULTS } from '../config/defaults.js';
import { ConfigError } from '../core/errors.js';
import type { SessionStore } from './contract.js';
import { FilesystemStore } from './filesystem.js';
import type { StorageLogger } from './guard.js';
import { MemoryStore } from './memory.js';
import { driverOptions, STORAGE_NAMES } from './options.js';

/** The embedded stores (and a ready instance) need no driver: they are made at once; null for Redis/PostgreSQL. */
export function createEmbeddedStore(config: SessionServerConfig, log: StorageLogger | undefined): SessionStore | null {
  const storage = config.storage ?? DEFAULTS.storage;
  if (typeof storage === 'object') return storage;
  if (storage === 'memory') return new MemoryStore(driverOptions.memory(config));
  if (storage === 'filesystem') return new FilesystemStore(driverOptions.filesystem(config, log));
  if (storage === 'redis' || storage === 'postgres') return null;
  throw new ConfigError(`unknown storage "${String(storage)}" (expected one of: ${STORAGE_NAMES.join(', ')})`);
}

/** The configured store; the Redis and PostgreSQL drivers (ioredis, pg) are imported only when named. */
export async function loadStore(config: SessionServerConfig, log: StorageLogger | undefined = config.logger): Promise<SessionStore> {
  const embedded = createEmbeddedStore(config, log);
  if (embedded) return embedded;
  if (config.storage === 'redis') {
    const { RedisStore } = await import('./redis.js');
    return new RedisStore(driverOptions.redis(config, log));
  }
  const { PostgresStore } = await import('./postgres.js');
  return new PostgresStore(driverOptions.postgres(config, log));
}
