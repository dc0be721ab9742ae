/**
 * A protocol of its own on the framework core alone: a tiny in-memory key/value server with
 * integer counters, and a plugin that counts writes. No sessions, no storage drivers: it
 * imports only `sessionserver/framework`.
 *
 *   npx tsx examples/key-value-server.ts      # then: printf 'set a 1\nincr a\nget a\nwrites\nquit\n' | nc 127.0.0.1 7070
 */
import { command, CommandError, definePlugin, LineServer, type Connection, type LineServerOptions } from 'sessionserver/framework';

const INTEGER = /^-?\d{1,15}$/;

export class KeyValueServer extends LineServer {
  private readonly values = new Map<string, string>();

  constructor(options: LineServerOptions = {}) {
    super({ port: 7070, ...options });
  }

  @command({ usage: 'set <key> <value>', summary: 'store a value (the rest of the line)', access: 'write' })
  cmd_set(_ctx: Connection, key: string, value: string): void {
    if (key === '') throw new CommandError('set needs a key');
    this.values.set(key, value);
  }

  @command({ usage: 'get <key>', summary: 'read a value', access: 'read' })
  cmd_get(_ctx: Connection, key: string): string {
    const value = this.values.get(key);
    if (value === undefined) throw new CommandError('no such key');
    return value;
  }

  @command({ usage: 'del <key>', summary: 'delete a key; replies 1 or 0', access: 'write' })
  cmd_del(_ctx: Connection, key: string): string {
    return this.values.delete(key) ? '1' : '0';
  }

  @command({ usage: 'incr <key> [by]', summary: 'add an integer (default 1); replies the result', access: 'write' })
  cmd_incr(_ctx: Connection, key: string, by: string): string {
    const current = this.values.get(key) ?? '0';
    const step = by === '' ? '1' : by;
    if (!INTEGER.test(current) || !INTEGER.test(step)) throw new CommandError('not an integer');
    const next = String(Number(current) + Number(step));
    this.values.set(key, next);
    return next;
  }
}

/** Counts successful write commands (by each command's declared `access`) and adds `writes`. */
export const writeCounter = definePlugin<undefined, KeyValueServer>({
  name: 'write-counter',
  apply(server, _options, plugin) {
    let writes = 0;
    plugin.tap(server.hooks.afterCommand, (_ctx, outcome) => {
      if (outcome.ok && server.commands.get(outcome.command)?.spec.access === 'write') writes++;
    });
    plugin.addCommand({ name: 'writes', usage: 'writes', summary: 'successful writes since start', access: 'read', run: () => String(writes) });
  },
});

// Run directly: start it.
if (import.meta.url === `file://${process.argv[1]}`) {
  const server = new KeyValueServer({ plugins: [writeCounter] });
  const { address, port } = await server.listen();
  server.log.info({ address, port }, 'key/value server listening');
  process.on('SIGTERM', () => void server.close());
  process.on('SIGINT', () => void server.close());
}
