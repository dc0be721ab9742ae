/**
 * logging — structured JSON logs (pino, through the server's logger and its level) of
 * connections, commands (name, duration, outcome), sessions, reloads and errors.
 * Values, passwords and tokens are never logged; session ids appear only as a short hash.
 *
 *   plugins: ['logging']            or   plugins: [['logging', { commands: 'debug' }]]
 */
import { createHash } from 'node:crypto';
import type { LineServer, OpenSession } from '../lib/index.js';
import { definePlugin } from '../lib/core/plugin-host.js';

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
  apply(server, options) {
    const log = server.log.child({ plugin: 'logging' });
    const commandLevel = options?.commands ?? 'info';
    const { hooks } = server;
    hooks.listening.tap('logging', (address) => log.info({ host: address.address, port: address.port }, 'listening'));
    hooks.connection.tap('logging', (ctx) => log.info({ connection: ctx.id, remote: ctx.remoteAddress }, 'connected'));
    hooks.disconnect.tap('logging', (ctx) => log.info({ connection: ctx.id, user: ctx.user ?? undefined }, 'disconnected'));
    hooks.afterCommand.tap('logging', (ctx, outcome) => {
      log[commandLevel](
        { connection: ctx.id, user: ctx.user ?? undefined, command: outcome.command, durationMs: Number(outcome.durationMs.toFixed(3)), ok: outcome.ok, error: outcome.error },
        'command',
      );
    });
    for (const [event, hook] of [['opened', hooks.sessionOpen], ['committed', hooks.sessionCommit], ['closed', hooks.sessionClose], ['destroyed', hooks.sessionDestroy]] as const) {
      hook.tap('logging', (ctx, session) => log.debug({ connection: ctx.id, session: sessionTag(session), mode: session.mode }, `session ${event}`));
    }
    hooks.reload.tap('logging', (event) => {
      if (event.error) log.error({ kind: event.kind, file: event.file, action: event.action, err: event.error }, 'reload failed');
      else log.info({ kind: event.kind, file: event.file, action: event.action }, 'reloaded');
    });
    hooks.error.tap('logging', (error, ctx) => log.error({ err: error, connection: ctx?.id }, 'error'));
    hooks.shutdown.tap('logging', () => log.info('shut down'));
  },
});
