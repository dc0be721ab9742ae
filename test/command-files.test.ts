import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import { fileURLToPath } from 'node:url';
import { captureLogger } from './support/log-capture.js';
import { startServer, tempDir } from './support/server.js';

const REPO_COMMANDS = fileURLToPath(new URL('../commands', import.meta.url));

test('a .mjs function export is a command named after its file', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'shout.mjs'), 'export default function (ctx, text) { return text.toUpperCase(); }\n');
  const { connect } = await startServer(t, { commandsDir: dir });
  const c = await connect();
  t.is(await c.request('shout hey you'), 'ok HEY');
  t.is(await c.request('help shout'), 'ok shout');
});

test('a .ts object export with its name, usage and session need, loaded without a build', async (t) => {
  const dir = await tempDir(t);
  await writeFile(
    join(dir, 'double.ts'),
    `interface Ctx { session: { get(key: string): string | undefined; put(key: string, value: string): void } | null }
export default {
  name: 'double',
  usage: 'double <key>',
  summary: 'double a number',
  session: 'write' as const,
  run(ctx: Ctx, key: string): string {
    const next = String(Number(ctx.session!.get(key) ?? 0) * 2);
    ctx.session!.put(key, next);
    return next;
  },
};
`,
  );
  const { connect } = await startServer(t, { commandsDir: dir });
  const c = await connect();
  t.is(await c.request('double n'), 'err No session opened.');
  await c.request('new');
  await c.request('put n 21');
  t.is(await c.request('double n'), 'ok 42');
  t.is(await c.request('help double'), 'ok double <key> - double a number');
  await c.request('commit');
  t.is(await c.request('double n'), 'err Could not run double', 'read-only now: the write guard refuses');
});

test('collisions and invalid exports are reported with the file name and skipped; the server starts', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'get.mjs'), 'export default () => "shadow";\n');
  await writeFile(join(dir, 'a-first.mjs'), 'export default { name: "twin", run: () => "first" };\n');
  await writeFile(join(dir, 'b-second.mjs'), 'export default { name: "twin", run: () => "second" };\n');
  await writeFile(join(dir, 'norun.mjs'), 'export default { name: "norun" };\n');
  await writeFile(join(dir, 'broken.ts'), 'export default { name: "broken", run( };\n');
  await writeFile(join(dir, 'badname.mjs'), 'export default { name: "no spaces allowed", run: () => "x" };\n');
  await writeFile(join(dir, 'notes.txt'), 'not a command\n');
  const { logger, lines } = captureLogger();
  const { connect } = await startServer(t, { commandsDir: dir, logger });
  const c = await connect();
  await c.request('new');
  await c.request('put a real');
  t.is(await c.request('get a'), 'ok real', 'the built-in is not shadowed');
  t.is(await c.request('twin'), 'ok first', 'the first file keeps the name');
  t.is(await c.request('norun'), 'err unknown command');
  t.is(await c.request('broken'), 'err unknown command');
  const errors = lines().filter((line) => line.level >= 50);
  const reported = (fragment: string) => errors.some((line) => String(line.file).endsWith(fragment) && line.err?.message);
  t.true(reported('get.mjs'), 'collision with a built-in');
  t.regex(errors.find((line) => String(line.file).endsWith('get.mjs'))!.err.message, /"get" is already defined by SessionServer/);
  t.regex(errors.find((line) => String(line.file).endsWith('b-second.mjs'))!.err.message, /"twin" is already defined by .*a-first\.mjs/);
  t.true(reported('norun.mjs'));
  t.true(reported('badname.mjs'));
  t.regex(errors.find((line) => String(line.file).endsWith('broken.ts'))!.err.message, /broken\.ts:1:\d+/, 'syntax errors name file and line');
  t.false(errors.some((line) => String(line.file).endsWith('notes.txt')));
});

test('the shipped example commands: incr, append, whoami', async (t) => {
  const { connect } = await startServer(t, { commandsDir: REPO_COMMANDS });
  const c = await connect();
  t.is(await c.request('incr n'), 'err No session opened.');
  await c.request('new');
  t.is(await c.request('incr n'), 'ok 1');
  t.is(await c.request('incr n 41'), 'ok 42');
  t.is(await c.request('incr n -50'), 'ok -8');
  t.is(await c.request('incr n x'), 'err Increment is not an integer');
  t.is(await c.request('append s héllo'), 'ok 6');
  t.is(await c.request('append s  world'), 'ok 12');
  t.is(await c.request('get s'), 'ok héllo world');
  t.is(await c.request('incr s'), 'err Value is not an integer');
  t.regex((await c.request('whoami'))!, /^ok connection=\d+ remote=127\.0\.0\.1:\d+ user=- session=open mode=rw keys=2$/);
  await c.request('commit');
  t.is(await c.request('incr n'), 'err Could not increment value');
});
