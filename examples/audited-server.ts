/**
 * A platform team's server: sessionserver plus two commands of its own and an override.
 *
 *   npx tsx examples/audited-server.ts        # then: printf 'new\nput a 1\nsnapshot\n' | nc 127.0.0.1 9090
 */
import { command, CommandError, SessionServer, type SessionConnection, type SessionServerConfig } from 'sessionserver';

export class AuditedServer extends SessionServer {
  private readonly writesByConnection = new WeakMap<SessionConnection, number>();

  constructor(config: SessionServerConfig = {}) {
    super({ storage: 'memory', ...config });
  }

  /** A new command: the open session's values as JSON, for support tooling. */
  @command({ usage: 'snapshot', summary: 'the open session as JSON', session: 'read' })
  cmd_snapshot(ctx: SessionConnection): string {
    return JSON.stringify(Object.fromEntries(ctx.openSession.entries()));
  }

  /** Another: how many writes this connection made. */
  @command({ usage: 'writes', summary: 'puts made by this connection' })
  cmd_writes(ctx: SessionConnection): string {
    return String(this.writesByConnection.get(ctx) ?? 0);
  }

  /** An override that keeps the built-in's spec (`put <key> <value>`, needs a writable session). */
  override cmd_put(ctx: SessionConnection, key: string, value: string): void {
    if (key.startsWith('__')) throw new CommandError('Keys starting with __ are reserved');
    super.cmd_put(ctx, key, value);
    this.writesByConnection.set(ctx, (this.writesByConnection.get(ctx) ?? 0) + 1);
  }
}

// Run directly: start it.
if (import.meta.url === `file://${process.argv[1]}`) {
  const server = new AuditedServer();
  const { address, port } = await server.listen({ port: 9090 });
  server.log.info({ address, port }, 'audited server listening');
  process.on('SIGTERM', () => void server.close());
  process.on('SIGINT', () => void server.close());
}
