import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import { SessionServer, type Plugin, type SessionConnection } from '../lib/index.js';
import { startServer, tempDir } from './support/server.js';
import { until } from './support/wait.js';

test('each hook fires with the right arguments', async (t) => {
  const events: Array<[string, ...unknown[]]> = [];
  const recorder: Plugin<undefined, SessionServer> = {
    name: 'recorder',
    apply(server) {
      const h = server.hooks;
      h.listening.tap('recorder', (address) => void events.push(['listening', address.port]));
      h.connection.tap('recorder', (ctx) => void events.push(['connection', ctx.id]));
      h.beforeCommand.tap('recorder', (ctx, entry, request) => void events.push(['beforeCommand', ctx.id, entry.name, request.arg1]));
      h.afterCommand.tap('recorder', (ctx, outcome) => void events.push(['afterCommand', ctx.id, outcome.command, outcome.ok, outcome.error ?? null, typeof outcome.durationMs]));
      h.sessionOpen.tap('recorder', (ctx, session) => void events.push(['sessionOpen', ctx.id, session.mode]));
      h.sessionCommit.tap('recorder', (ctx, session) => void events.push(['sessionCommit', ctx.id, session.mode]));
      h.sessionClose.tap('recorder', (ctx, session) => void events.push(['sessionClose', ctx.id, session.mode]));
      h.sessionDestroy.tap('recorder', (ctx, session) => void events.push(['sessionDestroy', ctx.id, session.mode]));
      h.disconnect.tap('recorder', (ctx) => void events.push(['disconnect', ctx.id, (ctx as SessionConnection).session]));
      h.error.tap('recorder', (error, ctx) => void events.push(['error', error.message, ctx?.id ?? null]));
      h.shutdown.tap('recorder', () => void events.push(['shutdown']));
    },
  };
  const { connect, port, server } = await startServer(t, { plugins: [recorder] });
  server.addCommand({ name: 'explode', run: () => { throw new Error('kaboom'); } });
  const c = await connect();
  await c.request('open s1 rw');
  await c.request('get nope');
  await c.request('commit');
  await c.request('open s1 rw');
  await c.request('destroy');
  await c.request('open s2 r');
  await c.request('explode');
  c.close();
  await until(() => events.some((e) => e[0] === 'disconnect'), 'the disconnect hook');
  await server.close();
  const id = events.find((e) => e[0] === 'connection')![1];
  t.deepEqual(events[0], ['listening', port]);
  t.deepEqual(events.filter((e) => e[0] === 'beforeCommand').map((e) => e[2]), ['open', 'get', 'commit', 'open', 'destroy', 'open', 'explode']);
  t.deepEqual(events.find((e) => e[0] === 'beforeCommand'), ['beforeCommand', id, 'open', 's1']);
  t.deepEqual(events.filter((e) => e[0] === 'afterCommand').slice(0, 2), [
    ['afterCommand', id, 'open', true, null, 'number'],
    ['afterCommand', id, 'get', false, 'Key does not exist', 'number'],
  ]);
  t.deepEqual(events.filter((e) => e[0].startsWith('session')), [
    ['sessionOpen', id, 'rw'],
    ['sessionCommit', id, 'r'],
    ['sessionClose', id, 'r'],
    ['sessionOpen', id, 'rw'],
    ['sessionDestroy', id, 'rw'],
  ]);
  t.deepEqual(events.find((e) => e[0] === 'error'), ['error', 'kaboom', id]);
  t.deepEqual(events.find((e) => e[0] === 'disconnect'), ['disconnect', id, null], 'after its session was released');
  t.deepEqual(events.at(-1), ['shutdown']);
});

test('a beforeCommand tap may refuse a command with its own message', async (t) => {
  const { connect } = await startServer(t, {
    plugins: [{ name: 'no-gc', apply: (server) => server.hooks.beforeCommand.tap('no-gc', (_ctx: unknown, entry: { name: string }) => (entry.name === 'gc' ? 'gc is disabled here' : undefined)) }],
  });
  const c = await connect();
  t.is(await c.request('gc'), 'err gc is disabled here');
  t.is(await c.request('ping'), 'ok pong');
});

test('with no taps, no hook is used: the dispatcher takes its direct path', async (t) => {
  const { server } = await startServer(t);
  for (const [name, hook] of Object.entries(server.hooks)) t.false(hook.isUsed(), name);
});

test('reloading a plugin file removes its old taps and commands first: never duplicated', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'counter.mjs');
  const version = (n: number) => `let disposed = 0;
export default {
  name: 'counter',
  apply(server) {
    server.hooks.afterCommand.tap('counter', (ctx) => { ctx.state = ctx.state ?? {}; ctx.state.count = (ctx.state.count ?? 0) + 1; });
    server.addCommand({ name: 'counted', run: (ctx) => 'v${n}:' + ctx.state.count });
  },
  dispose() { globalThis.__counterDisposed = (globalThis.__counterDisposed ?? 0) + 1; },
};
`;
  await writeFile(file, version(1));
  const { connect, server } = await startServer(t, { plugins: [file] });
  const c = await connect();
  await c.request('ping');
  t.is(await c.request('counted'), 'ok v1:1');
  for (const n of [2, 3]) {
    await writeFile(file, version(n));
    t.is(await server.plugins.reload(file), undefined);
  }
  t.is(await c.request('counted'), 'ok v3:2', 'one tap counted the last command, not three');
  t.is(server.hooks.afterCommand.taps.length, 1);
  t.is((globalThis as { __counterDisposed?: number }).__counterDisposed, 2);

  await writeFile(file, 'export default { name: "counter", apply( };');
  const error = await server.plugins.reload(file);
  t.truthy(error, 'a broken version is refused');
  t.is(await c.request('counted'), 'ok v3:3', 'and the previous version stays in service');

  await writeFile(file, 'export default { name: "counter", apply() { throw new Error("bad apply"); } };');
  t.regex((await server.plugins.reload(file))!.message, /bad apply/);
  t.is(await c.request('counted'), 'ok v3:4', 'a version that throws in apply is rolled back');
  t.is(server.hooks.afterCommand.taps.length, 1);
});

test('a plugin that cannot load stops the start (auth must never fail open)', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'broken.mjs');
  await writeFile(file, 'export default { name: "broken" };');
  const server = new SessionServer({ storage: 'memory', logLevel: 'silent', plugins: [file] });
  await t.throwsAsync(server.listen({ port: 0 }), { message: /needs an "apply\(server\)" function/ });
  await server.close();
  const missing = new SessionServer({ storage: 'memory', logLevel: 'silent', plugins: ['./no/such/plugin.ts'] });
  await t.throwsAsync(missing.listen({ port: 0 }), { message: /could not be loaded/ });
  await missing.close();
});
