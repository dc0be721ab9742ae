import { spawnSync } from 'node:child_process';
import { chmod, lstat, mkdir, readdir, readFile, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import type { SessionServerConfig } from '../lib/index.js';
import { postgresConfig, redisConfig } from './fixtures/stores.js';
import { captureLogger } from './support/log-capture.js';
import { startServer, tempDir } from './support/server.js';

// ---- One ttl range for every store ----

const MAX_TTL = 2_147_483_647;
const TTL_REFUSED = `err ttl must be a whole number of seconds from 1 to ${MAX_TTL}`;

const DRIVERS: Array<{ name: string; config: (t: ExecutionContext) => Promise<SessionServerConfig> }> = [
  { name: 'memory', config: async () => ({ storage: 'memory' }) },
  { name: 'filesystem', config: async (t) => ({ storage: 'filesystem', savePath: await tempDir(t) }) },
  { name: 'redis', config: (t) => redisConfig(t) },
  { name: 'postgres', config: (t) => postgresConfig(t) },
];

for (const driver of DRIVERS) {
  test(`${driver.name}: ttl takes 1 to ${MAX_TTL} seconds and refuses more with the same text as every store`, async (t) => {
    const { connect } = await startServer(t, await driver.config(t));
    const c = await connect();
    const sid = (await c.request('new'))!.slice(3);
    t.deepEqual(await c.pipeline(['put a 1', 'close', `open ${sid} rw`]), ['ok', 'ok', 'ok']);
    t.is(await c.request(`ttl ${MAX_TTL}`), 'ok');
    t.is(await c.request('ttl'), `ok ${MAX_TTL}`);
    t.is(await c.request(`ttl ${MAX_TTL + 1}`), TTL_REFUSED);
    t.is(await c.request('ttl 9999999999'), TTL_REFUSED);
    t.is(await c.request('ttl'), `ok ${MAX_TTL}`, 'a refused ttl changes nothing');
    t.is(await c.request('ttl 1'), 'ok');
    t.is(await c.request('ttl default'), 'ok');
    // A session not stored yet: refused before anything is written.
    const fresh = (await c.request('new'))!.slice(3);
    t.is(await c.request('ttl 9999999999'), TTL_REFUSED);
    t.is(await c.request(`ttl ${MAX_TTL}`), 'ok');
    t.deepEqual(await c.pipeline(['close', `open ${fresh} r`, 'ttl']), ['ok', 'ok', `ok ${MAX_TTL}`]);
  });
}

// ---- The filesystem store's folder is its own ----

async function fileServer(t: ExecutionContext, savePath: string) {
  const log = captureLogger('info');
  const running = await startServer(t, { storage: 'filesystem', savePath, logger: log.logger });
  return { ...running, log };
}

test('filesystem: the save folder is created 0700; one other users can write to is refused unless sticky, then a warning', async (t) => {
  const root = await tempDir(t);
  const created = join(root, 'new', 'sessions');
  await fileServer(t, created);
  t.is((await stat(created)).mode & 0o7777, 0o700);

  for (const mode of [0o777, 0o770, 0o722]) {
    const shared = join(root, `shared-${mode.toString(8)}`);
    await mkdir(shared);
    await chmod(shared, mode);
    await t.throwsAsync(startServer(t, { storage: 'filesystem', savePath: shared }), { message: /writable by other users/ }, mode.toString(8));
  }

  const sticky = join(root, 'sticky');
  await mkdir(sticky);
  await chmod(sticky, 0o1777);
  const { connect, log } = await fileServer(t, sticky);
  const c = await connect();
  t.regex((await c.request('new'))!, /^ok [0-9a-f]{32}$/);
  const warnings = log.lines().filter((line) => line.level === 40 && /writable by other users/.test(line.msg));
  t.is(warnings.length, 1);
});

test('filesystem: a symbolic link named sess_* is never followed: not read, not touched, replaced by a write', async (t) => {
  const savePath = await tempDir(t);
  const outside = await tempDir(t);
  const target = join(outside, 'not-a-session');
  const targetText = JSON.stringify({ v: 1, data: { secret: 'outside the folder' } });
  await writeFile(target, targetText);
  const long = new Date('2001-01-01T00:00:00Z');
  await utimes(target, long, long);
  const sid = 'a'.repeat(32);
  await symlink(target, join(savePath, `sess_${sid}`));

  const { connect, log } = await fileServer(t, savePath);
  const c = await connect();
  t.is(await c.request(`open ${sid} r`), 'err Could not open session.');
  t.deepEqual(await c.pipeline([`open ${sid} rw`, 'get secret', 'touch', 'put mine 1', 'close']), ['ok', 'err Key does not exist', 'ok', 'ok', 'ok']);

  t.is(await readFile(target, 'utf8'), targetText, 'the target is unchanged');
  t.is((await stat(target)).mtimeMs, long.getTime(), 'and untouched');
  t.true((await lstat(join(savePath, `sess_${sid}`))).isFile(), 'the write replaced the link with a file of ours');
  t.deepEqual(await c.pipeline([`open ${sid} r`, 'get mine']), ['ok', 'ok 1']);
  const warning = log.lines().find((line) => line.level === 40 && /symbolic link/.test(line.msg));
  t.truthy(warning);
  t.false(JSON.stringify(warning).includes(sid), 'the warning does not name the session id');
});

test('filesystem: a FIFO named sess_* is refused at once instead of blocking a read forever', async (t) => {
  const savePath = await tempDir(t);
  const sid = 'b'.repeat(32);
  t.is(spawnSync('mkfifo', [join(savePath, `sess_${sid}`)]).status, 0);
  const { connect } = await fileServer(t, savePath);
  const c = await connect();
  t.is(await c.request(`open ${sid} r`, 20_000), 'err Could not open session.');
  t.is(await c.request('ping'), 'ok pong');
});

test('filesystem: temp files left by a crashed write are removed at start; sessions stay', async (t) => {
  const savePath = await tempDir(t);
  const sid = 'c'.repeat(32);
  await writeFile(join(savePath, `sess_${sid}`), JSON.stringify({ v: 1, data: { kept: 'yes' } }), { mode: 0o600 });
  await writeFile(join(savePath, `sess_${sid}.0123456789ab.tmp`), '{"v":1,"da', { mode: 0o600 });
  await writeFile(join(savePath, `sess_${'d'.repeat(32)}.ba9876543210.tmp`), '', { mode: 0o600 });
  const { connect } = await fileServer(t, savePath);
  t.deepEqual(await readdir(savePath), [`sess_${sid}`]);
  const c = await connect();
  t.deepEqual(await c.pipeline([`open ${sid} r`, 'get kept']), ['ok', 'ok yes']);
});
