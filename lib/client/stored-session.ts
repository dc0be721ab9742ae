import { isServerError } from './errors.js';
import type { SessionClient } from './session-client.js';
import { decodeSessionValues } from './values.js';

/** A session as express-session and @fastify/session hand it over: a cookie plus the app's values. */
export interface StoredSession {
  cookie?: { expires?: Date | string | null; originalMaxAge?: number | null; maxAge?: number | null };
  [key: string]: any;
}


/**
 * Stored values → a session. Every session is one, whoever wrote it: a PHP login has no
 * `cookie`, and the framework gives it one. A `cookie` that is no object is not the
 * framework's either; it is left out (the next save replaces it).
 */
export function toSession(stored: Record<string, string>): StoredSession {
  const session = decodeSessionValues(stored) as StoredSession;
  if (Object.hasOwn(session, 'cookie') && !isPlainObject(session.cookie)) delete session.cookie;
  return session;
}

/** True when the session's cookie has an `expires` that has passed (what MemoryStore checks). */
export function isExpired(session: StoredSession): boolean {
  const expires = session.cookie?.expires;
  if (expires === undefined || expires === null) return false;
  const at = new Date(expires).getTime();
  return !Number.isNaN(at) && at <= Date.now();
}

/** The stored values, read without taking the writer lock (`open r`); null when the session does not exist. */
export async function readStored(client: SessionClient, serverId: string): Promise<Record<string, string> | null> {
  const [opened, values] = await Promise.allSettled([client.open(serverId, 'r'), client.getAll(), client.close()]);
  if (opened.status === 'rejected') {
    if (isServerError(opened.reason, 'E_OPEN_FAILED')) return null;
    throw opened.reason;
  }
  if (values.status === 'rejected') throw values.reason;
  return values.value;
}

/**
 * Opens an existing session `rw` (waiting for its writer lock) and reads it. Null when it
 * does not exist; then nothing is created and nothing is held. `open … rw` alone would
 * create it, and could not tell a missing session from an empty one (PHP's `$_SESSION = []`).
 */
export async function openExisting(client: SessionClient, serverId: string): Promise<Record<string, string> | null> {
  const [probe, opened, values] = await Promise.allSettled([client.open(serverId, 'r'), client.open(serverId, 'rw'), client.getAll()]);
  if (opened.status === 'rejected') throw opened.reason;
  const existed = probe.status === 'fulfilled';
  if (values.status === 'rejected') {
    // Never let the pool's close store an empty session that `rw` made up.
    await (existed ? client.close() : client.destroy()).catch(() => {});
    throw values.reason;
  }
  if (probe.status === 'rejected' && !isServerError(probe.reason, 'E_OPEN_FAILED')) {
    await client.close().catch(() => {});
    throw probe.reason;
  }
  // Missing when probed, but someone may have written it while `rw` waited for the lock.
  if (!existed && Object.keys(values.value).length === 0) {
    await client.destroy();
    return null;
  }
  return values.value;
}

/** Deletes a session whose cookie has expired, checking again under the writer lock (a request may have touched it since). */
export async function destroyIfExpired(client: SessionClient, serverId: string): Promise<void> {
  const stored = await openExisting(client, serverId);
  if (stored === null) return;
  await (isExpired(toSession(stored)) ? client.destroy() : client.close());
}

/** Awaits pipelined requests; rejects with the first failure, after all have settled. */
export async function all(requests: Array<Promise<unknown>>): Promise<void> {
  const results = await Promise.allSettled(requests);
  const failed = results.find((result) => result.status === 'rejected');
  if (failed) throw (failed as PromiseRejectedResult).reason;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !Buffer.isBuffer(value);
}
