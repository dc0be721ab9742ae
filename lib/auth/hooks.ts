import { AsyncSeriesBailHook } from 'tapable';
import type { Connection } from '../core/connection.js';
import type { LineServer } from '../core/line-server.js';

/**
 * The authentication hook point. It belongs to the auth concern, not to the line core:
 * the first plugin that asks defines it on the server, and others tap the same hook.
 * `auth <a> [b]`: a tap resolves to the principal it accepts, or undefined.
 */
export function authenticateHook(server: LineServer): AsyncSeriesBailHook<[Connection, string, string], string | undefined> {
  return server.defineHook('authenticate', () => new AsyncSeriesBailHook<[Connection, string, string], string | undefined>(['connection', 'arg1', 'arg2']));
}
