/**
 * `sessionserver`: everything, for compatibility. Lighter entry points: `sessionserver/framework`
 * (the line core alone), `sessionserver/client` (the Node client and stores, no server code),
 * `sessionserver/storage/redis` and `sessionserver/storage/postgres` (the optional drivers).
 */
export * from './core/index.js';
export {
  SessionServer,
  command,
  defineSessionCommand,
  type SessionCommandDefinition,
  type SessionCommandSpec,
  type SessionNeed,
} from './session/session-server.js';
export { SessionConnection } from './session/session-connection.js';
export { SESSION_HOOKS, type LockWaitEvent, type SessionServerHooks } from './session/hooks.js';
export { defineConfig, DEFAULTS, type SessionServerConfig, type StorageName } from './config/config.js';
export { OpenSession, type SessionMode } from './session/open-session.js';
export { LockTable, type LockManager, type SessionLock } from './locks/lock-table.js';
export { WaiterQueue } from './locks/waiter-queue.js';
export { LockTimeoutError, LockWaitAbortedError } from './locks/errors.js';
export { StoreError } from './core/errors.js';
export { isValidSessionId, newSessionId } from './protocol/session-id.js';
export type { SessionData, SessionExpiry, SessionStore } from './storage/contract.js';
export { MemoryStore } from './storage/memory.js';
export { FilesystemStore, type FilesystemStoreOptions } from './storage/filesystem.js';
export { RedisStore, type RedisStoreOptions } from './storage/redis.js';
export { PostgresStore, type PostgresStoreOptions } from './storage/postgres.js';
export { LeaseLockManager, type LockAttempt } from './storage/lease-locks.js';
export { createStore } from './storage/index.js';
export { metricsAddress } from './metrics/http-endpoint.js';
export { authenticateHook } from './auth/hooks.js';
export { hashPassword, verifyPassword } from './auth/password.js';
export * from './client/index.js';
