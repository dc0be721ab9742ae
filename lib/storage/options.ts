import type { SessionServerConfig } from '../config/config.js';
import { DEFAULTS } from '../config/defaults.js';
import type { StorageLogger } from './guard.js';

/**
 * What each driver is told by a configuration: one mapping, read by `createStore` (all
 * drivers loaded) and `loadStore` (Redis and PostgreSQL loaded only when configured).
 */
/** What every store with I/O gets: the bound on each operation and who hears about outages. */
const guarded = (config: SessionServerConfig, log: StorageLogger | undefined) => ({ timeout: config.storageTimeout ?? DEFAULTS.storageTimeout, log });

export const driverOptions = {
  memory: (config: SessionServerConfig) => ({ maxMemory: config.maxMemory }),
  filesystem: (config: SessionServerConfig, log: StorageLogger | undefined) => ({
    savePath: config.savePath ?? DEFAULTS.savePath,
    fsync: config.fsync,
    ...guarded(config, log),
  }),
  redis: (config: SessionServerConfig, log: StorageLogger | undefined) => ({
    url: config.redisUrl,
    prefix: config.redisPrefix,
    maxLifetime: config.maxLifetime,
    lockLease: config.lockLease,
    waitReplicas: config.redisWaitReplicas,
    ...guarded(config, log),
  }),
  postgres: (config: SessionServerConfig, log: StorageLogger | undefined) => ({
    url: config.postgresUrl,
    table: config.postgresTable,
    poolSize: config.postgresPoolSize,
    lockLease: config.lockLease,
    ...guarded(config, log),
  }),
};

export const STORAGE_NAMES = ['memory', 'filesystem', 'redis', 'postgres'] as const;
