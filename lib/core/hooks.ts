import type { AddressInfo } from 'node:net';
import { AsyncSeriesHook, SyncBailHook, SyncHook } from 'tapable';
import type { Request } from '../protocol/request.js';
import type { CommandEntry } from './command.js';
import type { Connection } from './connection.js';

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

/** Any tapable hook: what a hook set holds and what plugins tap. */
export interface AnyHook {
  readonly taps: ReadonlyArray<{ type: 'sync' | 'async' | 'promise'; name: string; fn: Function; stage?: number; before?: string }>;
  readonly interceptors: unknown[];
  isUsed(): boolean;
  tap(options: string | { name: string; stage?: number; before?: string }, fn: (...args: any[]) => any): void;
  intercept(interceptor: any): void;
}

/** Makes a fresh, untapped hook; a hook set keeps one per hook so a hook can be rebuilt without some taps. */
export type HookFactories = Record<string, () => AnyHook>;
export type HooksOf<F extends HookFactories> = { [K in keyof F]: ReturnType<F[K]> };

/**
 * The line core's hooks. Taps follow tapable's convention; an untapped hook costs one
 * `isUsed()` check on the hot path. Subclasses add theirs (SessionServer: session hooks).
 */
export const CORE_HOOKS = {
  /** The server accepts connections at `address`. */
  listening: () => new AsyncSeriesHook<[AddressInfo]>(['address']),
  /** A client connected (before its first line). */
  connection: () => new SyncHook<[Connection]>(['connection']),
  /** A client is gone and what it held is released. */
  disconnect: () => new SyncHook<[Connection]>(['connection']),
  /** Before a known command runs; return a message to refuse it with `err <message>`. */
  beforeCommand: () => new SyncBailHook<[Connection, CommandEntry, Request], string | undefined>(['connection', 'command', 'request']),
  /** After a command replied, with its name, duration and outcome. */
  afterCommand: () => new SyncHook<[Connection, CommandOutcome]>(['connection', 'outcome']),
  /** A command file or plugin was (re)loaded, deleted, or failed to load. */
  reload: () => new SyncHook<[ReloadEvent]>(['event']),
  /** An unexpected error; `connection` is null when no client caused it. */
  error: () => new SyncHook<[Error, Connection | null]>(['error', 'connection']),
  /** The server is stopping; clients are released. */
  shutdown: () => new AsyncSeriesHook<[]>([]),
} satisfies HookFactories;

export type CoreHooks = HooksOf<typeof CORE_HOOKS>;
/** @deprecated the core hook set; kept as an alias for plugins written against 0.1. */
export type ServerHooks = CoreHooks;

export function buildHooks<F extends HookFactories>(factories: F): HooksOf<F> {
  const hooks = {} as Record<string, AnyHook>;
  for (const [name, make] of Object.entries(factories)) hooks[name] = make();
  return hooks as HooksOf<F>;
}

const TAP_METHOD = { sync: 'tap', async: 'tapAsync', promise: 'tapPromise' } as const;

/**
 * A hook equal to `hook` without the taps whose function is in `remove`. tapable has no
 * public untap; rebuilding from the public `taps` and `interceptors` needs no private API.
 */
export function hookWithout(hook: AnyHook, make: () => AnyHook, remove: ReadonlySet<Function>): AnyHook {
  const fresh = make();
  for (const interceptor of hook.interceptors) fresh.intercept(interceptor);
  for (const tap of hook.taps) {
    if (remove.has(tap.fn)) continue;
    const options = { name: tap.name, ...(tap.stage !== undefined ? { stage: tap.stage } : {}), ...(tap.before !== undefined ? { before: tap.before } : {}) };
    (fresh as unknown as Record<string, (o: typeof options, fn: Function) => void>)[TAP_METHOD[tap.type]]!(options, tap.fn);
  }
  return fresh;
}
