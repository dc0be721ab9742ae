import { SyncHook } from 'tapable';
import { CORE_HOOKS, type HooksOf } from '../core/hooks.js';
import type { OpenSession } from './open-session.js';
import type { SessionConnection } from './session-connection.js';

/** What a writer's lock wait came to, for metrics: `waitedMs` from asking to holding (or giving up). */
export interface LockWaitEvent {
  readonly waitedMs: number;
  readonly acquired: boolean;
}

/** The session server's hooks: the core's, plus the session lifecycle. */
export const SESSION_HOOKS = {
  ...CORE_HOOKS,
  sessionOpen: () => new SyncHook<[SessionConnection, OpenSession]>(['connection', 'session']),
  sessionCommit: () => new SyncHook<[SessionConnection, OpenSession]>(['connection', 'session']),
  sessionClose: () => new SyncHook<[SessionConnection, OpenSession]>(['connection', 'session']),
  sessionDestroy: () => new SyncHook<[SessionConnection, OpenSession]>(['connection', 'session']),
  /** A writer asked for a session's lock and got it (or timed out / gave up). */
  lockWait: () => new SyncHook<[SessionConnection, LockWaitEvent]>(['connection', 'event']),
  /** A storage operation failed (timeout, outage, I/O). */
  storageError: () => new SyncHook<[Error]>(['error']),
};

export type SessionServerHooks = HooksOf<typeof SESSION_HOOKS>;
