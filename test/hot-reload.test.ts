import { unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import type { ReloadEvent } from '../lib/index.js';
import { startServer, tempDir } from './support/server.js';
import { until } from './support/wait.js';

// How soon a change is live is measured by `npm run bench` (bench/latency.ts); here each
// step waits for the server's own reload event, then checks what clients see.

test('--watch: add, edit, break, fix and delete a command file while a client holds its session and lock', async (t) => {
  const dir = await tempDir(t);
  const events: ReloadEvent[] = [];
  const { connect, server } = await startServer(t, { commandsDir: dir, plugins: ['hot-reload'], lockTimeout: 100 });
  server.hooks.reload.tap('test', (event) => void events.push(event));
  const holder = await connect();
  const client = await connect();
  const rival = await connect();
  await holder.request('open held rw');
  await holder.request('put pending yes');
  const file = join(dir, 'greet.ts');
  /** Saves (or deletes) the file and resolves with the reload event that saving caused. */
  const save = async (content: string | null, action: ReloadEvent['action']): Promise<ReloadEvent> => {
    const seen = events.length;
    await (content === null ? unlink(file) : writeFile(file, content));
    const mine = () => events.slice(seen).find((event) => event.file === file && event.action === action);
    await until(() => mine() !== undefined, `a ${action} reload event for ${file}`);
    return mine()!;
  };

  t.is((await save('export default (ctx: unknown, name: string): string => `hello ${name}`;\n', 'add')).error, undefined);
  t.is(await client.request('help greet'), 'ok greet');
  t.is(await client.request('greet bob'), 'ok hello bob');

  t.is((await save('export default (ctx: unknown, name: string): string => `bonjour ${name}`;\n', 'change')).error, undefined);
  t.is(await client.request('greet bob'), 'ok bonjour bob');

  const failure = await save('export default (ctx: unknown, name: string): string => `broken ${name\n', 'change');
  t.truthy(failure.error, 'the failed reload is reported');
  t.regex(failure.error!.message, /greet\.ts:\d+:\d+/, 'with file and line');
  t.is(await client.request('greet bob'), 'ok bonjour bob', 'the previous version stays');

  t.is((await save('export default { name: "greet", usage: "greet <name>", run: (ctx: unknown, name: string) => `hi ${name}` };\n', 'change')).error, undefined);
  t.is(await client.request('greet bob'), 'ok hi bob');
  t.is(await client.request('help greet'), 'ok greet <name>');

  t.is((await save(null, 'delete')).error, undefined);
  t.is(await client.request('help greet'), 'err unknown command');
  t.is(await client.request('greet bob'), 'err unknown command');

  // Nothing the holder had was disturbed.
  t.is(await rival.request('open held rw'), 'err Session is locked');
  t.is(await holder.request('get pending'), 'ok yes');
  t.is(await holder.request('close'), 'ok');
  t.is(await rival.request('open held r'), 'ok');
  t.is(await rival.request('get pending'), 'ok yes');
});

test('--watch: an edited plugin file is reloaded once, its old taps gone', async (t) => {
  const dir = await tempDir(t);
  const pluginFile = join(dir, 'tagger.mjs');
  const version = (tag: string) => `export default {
  name: 'tagger',
  apply(server) {
    server.hooks.afterCommand.tap('tagger', (ctx) => { ctx.state = ctx.state ?? { seen: [] }; ctx.state.seen.push('${tag}'); });
    server.addCommand({ name: 'seen', run: (ctx) => (ctx.state?.seen ?? []).join(',') });
  },
};
`;
  await writeFile(pluginFile, version('a'));
  const { connect, server } = await startServer(t, { plugins: [pluginFile, 'hot-reload'] });
  const c = await connect();
  await c.request('ping');
  t.is(await c.request('seen'), 'ok a');
  const reloaded = new Promise<ReloadEvent>((resolve) => server.hooks.reload.tap('test', resolve));
  await writeFile(pluginFile, version('b'));
  const event = await reloaded;
  t.deepEqual([event.kind, event.file, event.error], ['plugin', pluginFile, undefined]);
  await c.request('ping');
  t.is(await c.request('seen'), 'ok a,a,b', 'one tap per command after the reload, the new one');
  t.is(server.hooks.afterCommand.taps.filter((tap) => tap.name === 'tagger').length, 1);
});
