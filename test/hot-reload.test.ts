import { unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import type { ReloadEvent } from '../lib/index.js';
import { startServer, tempDir } from './support/server.js';
import type { LineClient } from './support/line-client.js';

/** Polls until `line` gets `expected`; returns how long that took after the save. */
async function until(client: LineClient, line: string, expected: string, savedAt: number, timeoutMs = 5000): Promise<number> {
  for (;;) {
    if ((await client.request(line)) === expected) return Date.now() - savedAt;
    if (Date.now() - savedAt > timeoutMs) throw new Error(`"${line}" never answered "${expected}"`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

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
  const delays: number[] = [];

  let saved = Date.now();
  await writeFile(file, 'export default (ctx: unknown, name: string): string => `hello ${name}`;\n');
  // Poll with help: unknown commands in a row would (rightly) get this client disconnected.
  delays.push(await until(client, 'help greet', 'ok greet', saved));
  t.is(await client.request('greet bob'), 'ok hello bob');

  saved = Date.now();
  await writeFile(file, 'export default (ctx: unknown, name: string): string => `bonjour ${name}`;\n');
  delays.push(await until(client, 'greet bob', 'ok bonjour bob', saved));

  await writeFile(file, 'export default (ctx: unknown, name: string): string => `broken ${name\n');
  const deadline = Date.now() + 5000;
  while (!events.some((event) => event.error) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
  const failure = events.find((event) => event.error)!;
  t.truthy(failure, 'the failed reload is reported');
  t.is(failure.file, file);
  t.regex(failure.error!.message, /greet\.ts:\d+:\d+/, 'with file and line');
  t.is(await client.request('greet bob'), 'ok bonjour bob', 'the previous version stays');

  saved = Date.now();
  await writeFile(file, 'export default { name: "greet", usage: "greet <name>", run: (ctx: unknown, name: string) => `hi ${name}` };\n');
  delays.push(await until(client, 'greet bob', 'ok hi bob', saved));
  t.is(await client.request('help greet'), 'ok greet <name>');

  saved = Date.now();
  await unlink(file);
  delays.push(await until(client, 'help greet', 'err unknown command', saved));
  t.is(await client.request('greet bob'), 'err unknown command');

  // Nothing the holder had was disturbed.
  t.is(await rival.request('open held rw'), 'err Session is locked');
  t.is(await holder.request('get pending'), 'ok yes');
  t.is(await holder.request('close'), 'ok');
  t.is(await rival.request('open held r'), 'ok');
  t.is(await rival.request('get pending'), 'ok yes');
  t.log(`change visible after ${delays.join(', ')} ms`);
  t.true(Math.max(...delays) < 1500, `every change visible quickly: ${delays.join(', ')} ms`);
  t.true(delays.sort((a, b) => a - b)[Math.floor(delays.length / 2)]! <= 500, `median within 500 ms: ${delays.join(', ')} ms`);
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
