import type { SessionServerConfig } from '../config/config.js';
import { DEFAULTS } from '../config/defaults.js';
import type { SessionStore } from './contract.js';
import type { StorageLogger } from './guard.js';
import { createEmbeddedStore } from './load.js';
import { driverOptions } from './options.js';
import { PostgresStore } from './postgres.js';
import { RedisStore } from './redis.js';

export { STORAGE_NAMES } from './options.js';
export { createEmbeddedStore, loadStore } from './load.js';

export { StorageUnavailableError, isStorageUnavailable, type StorageLogger } from './guard.js';
export { MAX_LIFETIME_SECONDS, InvalidLifetimeError } from './lifetime.js';

/**
 * The store a configuration names, at once (every driver is imported with this module; the
 * server itself uses `loadStore`, which imports a driver only when configured); a store
 * instance passes through unchanged. `log` (the
 * server's logger; default `config.logger`) hears when storage becomes unavailable and back.
 */
export function createStore(config: SessionServerConfig, log: StorageLogger | undefined = config.logger): SessionStore {
  const storage = config.storage ?? DEFAULTS.storage;
  if (storage === 'redis') return new RedisStore(driverOptions.redis(config, log));
  if (storage === 'postgres') return new PostgresStore(driverOptions.postgres(config, log));
  return createEmbeddedStore(config, log)!;
}
