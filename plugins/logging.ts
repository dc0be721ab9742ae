/**
 * logging — structured JSON logs (pino, through the server's logger and its level) of
 * connections, commands (name, duration, outcome), sessions, reloads and errors.
 * Values, passwords and tokens are never logged; session ids appear only as a short hash.
 *
 *   plugins: ['logging']            or   plugins: [['logging', { commands: 'debug' }]]
 */
import { createHash } from 'node:crypto';
import type { LineServer } from '../lib/core/line-server.js';
import { definePlugin } from '../lib/core/plugin-host.js';
import type { SessionServerHooks } from '../lib/session/hooks.js';
import type { OpenSession } from '../lib/session/open-session.js';

export interface LoggingOptions {
  /** Level of the per-command line. Default `info`. */
  commands?: 'info' | 'debug' | 'trace';
}

/** A session id is a bearer secret: logs get a stable, irreversible tag instead. */
function sessionTag(session: OpenSession): string {
  return createHash('sha256').update(session.id).digest('hex').slice(0, 12);
}

export default definePlugin<LoggingOptions | undefined, LineServer>({
  name: 'logging',
  apply(server, options, plugin) {
    const { log } = plugin;
    const commandLevel = options?.commands ?? 'info';
    const { hooks } = server;
    plugin.tap(hooks.listening, (address) => void log.info({ host: address.address, port: address.port }, 'listening'));
    plugin.tap(hooks.connection, (ctx) => log.info({ connection: ctx.id, remote: ctx.remoteAddress }, 'connected'));
    plugin.tap(hooks.disconnect, (ctx) => log.info({ connection: ctx.id, user: ctx.user ?? undefined }, 'disconnected'));
    plugin.tap(hooks.afterCommand, (ctx, outcome) => {
      log[commandLevel](
        { connection: ctx.id, user: ctx.user ?? undefined, command: outcome.command, durationMs: Number(outcome.durationMs.toFixed(3)), ok: outcome.ok, error: outcome.error },
        'command',
      );
    });
    // Session events exist only on a session server; a plain line server has none to log.
    const sessionHooks = hooks as Partial<SessionServerHooks>;
    if (sessionHooks.sessionOpen && sessionHooks.sessionCommit && sessionHooks.sessionClose && sessionHooks.sessionDestroy) {
      for (const [event, hook] of [['opened', sessionHooks.sessionOpen], ['committed', sessionHooks.sessionCommit], ['closed', sessionHooks.sessionClose], ['destroyed', sessionHooks.sessionDestroy]] as const) {
        plugin.tap(hook, (ctx, session) => log.debug({ connection: ctx.id, session: sessionTag(session), mode: session.mode }, `session ${event}`));
      }
    }
    plugin.tap(hooks.reload, (event) => {
      if (event.error) log.error({ kind: event.kind, file: event.file, action: event.action, err: event.error }, 'reload failed');
      else log.info({ kind: event.kind, file: event.file, action: event.action }, 'reloaded');
    });
    plugin.tap(hooks.error, (error, ctx) => log.error({ err: error, connection: ctx?.id }, 'error'));
    plugin.tapPromise(hooks.shutdown, async () => void log.info('shut down'));
  },
});
