import type { AddressInfo } from 'node:net';
import { AsyncSeriesBailHook, AsyncSeriesHook, SyncBailHook, SyncHook } from 'tapable';
import type { CommandEntry } from './command.js';
import type { Connection } from './connection.js';
import type { OpenSession } from '../session/open-session.js';
import type { Request } from '../protocol/request.js';

export interface CommandOutcome {
  readonly command: string;
  readonly durationMs: number;
  readonly ok: boolean;
  /** The `err` text sent to the client, when the command failed. */
  readonly error?: string;
}

export interface ReloadEvent {
  readonly kind: 'command' | 'plugin';
  readonly file: string;
  readonly action: 'add' | 'change' | 'delete';
  /** Set when the new version failed to load; the previous version stays in service. */
  readonly error?: Error;
}

/**
 * Every hook the server offers, in one place. Taps follow tapable's convention
 * (`server.hooks.beforeCommand.tap('MyPlugin', …)`); an untapped hook costs one check.
 */
export function createHooks() {
  return {
    /** The server accepts connections at `address`. */
    listening: new AsyncSeriesHook<[AddressInfo]>(['address']),
    /** A client connected (before its first line). */
    connection: new SyncHook<[Connection]>(['connection']),
    /** A client is gone; its session has been written and released. */
    disconnect: new SyncHook<[Connection]>(['connection']),
    /** `auth <a> [b]`: a tap resolves to the user name when it accepts the credentials, else undefined. */
    authenticate: new AsyncSeriesBailHook<[Connection, string, string], string | undefined>(['connection', 'arg1', 'arg2']),
    /** Before a known command runs; return a message to refuse it with `err <message>`. */
    beforeCommand: new SyncBailHook<[Connection, CommandEntry, Request], string | undefined>(['connection', 'command', 'request']),
    /** After a command replied, with its name, duration and outcome. */
    afterCommand: new SyncHook<[Connection, CommandOutcome]>(['connection', 'outcome']),
    sessionOpen: new SyncHook<[Connection, OpenSession]>(['connection', 'session']),
    sessionCommit: new SyncHook<[Connection, OpenSession]>(['connection', 'session']),
    sessionClose: new SyncHook<[Connection, OpenSession]>(['connection', 'session']),
    sessionDestroy: new SyncHook<[Connection, OpenSession]>(['connection', 'session']),
    /** A command file or plugin was (re)loaded, deleted, or failed to load. */
    reload: new SyncHook<[ReloadEvent]>(['event']),
    /** An unexpected error; `connection` is null when no client caused it. */
    error: new SyncHook<[Error, Connection | null]>(['error', 'connection']),
    /** The server is stopping; open sessions are already written. */
    shutdown: new AsyncSeriesHook<[]>([]),
  };
}

export type ServerHooks = ReturnType<typeof createHooks>;
