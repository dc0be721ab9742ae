import test from 'ava';
import { command, CommandError, SessionServer, type SessionConnection, type SessionServerConfig } from '../lib/index.js';
import { startServer } from './support/server.js';

class GreetingServer extends SessionServer {
  greeted = 0;

  @command({ usage: 'greet <name>', summary: 'say hello' })
  cmd_greet(_ctx: SessionConnection, name: string): string {
    if (name === '') throw new CommandError('Name required');
    this.greeted++;
    return `hello ${name}`;
  }

  @command({ usage: 'peek <key>', session: 'read', failure: 'Could not peek' })
  cmd_peek(ctx: SessionConnection, key: string): string {
    return ctx.openSession.get(key) ?? '(none)';
  }

  // Overrides a built-in and calls it; without its own @command it keeps get's spec.
  override cmd_get(ctx: SessionConnection, key: string): string {
    return super.cmd_get(ctx, key).toUpperCase();
  }

  @command({ usage: 'boom' })
  cmd_boom(): never {
    throw new Error('internal detail that must not reach the client');
  }
}

const start = (t: Parameters<typeof startServer>[0], config: SessionServerConfig = {}) =>
  startServer(t, config, (c) => new GreetingServer(c));

test('a subclass method cmd_<word> is a command, with its usage in help', async (t) => {
  const { connect, server } = await start(t);
  const c = await connect();
  t.is(await c.request('greet world'), 'ok hello world');
  t.is(await c.request('GREET you'), 'ok hello you');
  t.is(await c.request('greet'), 'err Name required');
  t.is((server as GreetingServer).greeted, 2);
  t.is(await c.request('help greet'), 'ok greet <name> - say hello');
  t.true((await c.request('help'))!.includes('peek <key>'));
});

test('declared session needs are enforced by the dispatcher', async (t) => {
  const { connect } = await start(t);
  const c = await connect();
  t.is(await c.request('peek a'), 'err No session opened.');
  await c.request('new');
  await c.request('put a 1');
  t.is(await c.request('peek a'), 'ok 1');
  t.is(await c.request('peek b'), 'ok (none)');
});

test('an override of a built-in can call super and keeps the built-in spec', async (t) => {
  const { connect, server } = await start(t);
  const c = await connect();
  t.is(await c.request('get a'), 'err No session opened.');
  await c.request('new');
  await c.request('put a shout');
  t.is(await c.request('get a'), 'ok SHOUT');
  t.is(await c.request('get missing'), 'err Key does not exist');
  t.is(server.commands.get('get')!.source, 'GreetingServer');
  t.is(server.commands.get('get')!.usage, 'get <key>');
});

test('an unexpected exception becomes the generic failure text and is logged, not sent', async (t) => {
  const { connect } = await start(t);
  const c = await connect();
  t.is(await c.request('boom'), 'err Could not run boom');
  t.is(await c.request('ping'), 'ok pong', 'the connection and server carry on');
});
