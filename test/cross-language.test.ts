import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { SessionClient } from '../lib/index.js';
import { call, cookieFor, get, startExpressApp } from './support/express-app.js';
import { startServer } from './support/server.js';

/**
 * express-session derives a new cookie's originalMaxAge from the clock (expires − now), so it
 * is the configured maxAge or a millisecond less when the clock ticked in between: compare seconds.
 */
const toSeconds = (ms: number | null) => (ms === null ? null : Math.round(ms / 1000));

// One session across languages: PHP's $_SESSION (clients/php, Debian's php-cli) and an
// express app with SessionServerStore on the same sessions, over real sockets, in plain and
// locking mode. CI installs php-cli, so there it never skips.

const DRIVER = fileURLToPath(new URL('../clients/php/tests/shared-session.php', import.meta.url));
const hasPhp = spawnSync('php', ['-v']).status === 0;
const phpTest = hasPhp || process.env.CI ? test : test.skip;
const HOUR = 3_600_000;

interface PhpRun {
  code: number;
  json: any;
  stderr: string;
}

function php(port: number, sid: string, action: string): Promise<PhpRun> {
  return new Promise((resolve) => {
    execFile('php', [DRIVER, String(port), sid, action], { timeout: 20_000 }, (error, stdout, stderr) => {
      const line = stdout.trim().split('\n').pop() ?? '';
      resolve({ code: error ? Number(error.code ?? 1) : 0, json: line ? JSON.parse(line) : null, stderr });
    });
  });
}

/** An id both PHP (`[a-zA-Z0-9,-]`) and express accept. */
const newId = () => randomBytes(16).toString('hex');

async function setup(t: Parameters<typeof startServer>[0], locking: boolean) {
  const { port } = await startServer(t, { listSessionIds: true });
  const app = await startExpressApp(t, { store: { port, locking }, cookie: { maxAge: HOUR } });
  const client = await SessionClient.connect({ port });
  t.teardown(() => client.disconnect());
  return { port, app, client };
}

async function storedCookie(client: SessionClient, sid: string): Promise<{ expires: string; originalMaxAge: number | null }> {
  await client.open(sid, 'r');
  const cookie = JSON.parse((await client.get('cookie'))!);
  await client.close();
  return cookie;
}

for (const locking of [false, true]) {
  const mode = locking ? 'locking' : 'plain';

  phpTest(`${mode}: a user logged in by PHP is the same user in express, and every value keeps its type both ways`, async (t) => {
    const { port, app, client } = await setup(t, locking);
    const sid = newId();
    const login = await php(port, sid, 'login');
    t.is(login.code, 0, login.stderr);

    const seen = await get(`${app.url}/whoami`, cookieFor(sid));
    t.is(seen.body.id, sid, 'express opens the session PHP made');
    t.deepEqual(seen.body.session, {
      user: { type: 'string', value: 'ada' },
      visits: { type: 'number', value: 3 },
      price: { type: 'number', value: 10 },
      ratio: { type: 'number', value: 0.5 },
      admin: { type: 'boolean', value: true },
      nothing: { type: 'null', value: null },
      tags: { type: 'array', value: ['a', 'b'] },
      cart: { type: 'object', value: { sku: 'A1', qty: 2 } },
      note: { type: 'string', value: 'two\nlines' },
      bytes: { type: 'Buffer', value: 'fffe' },
      object: { type: 'string', value: seen.body.session.object.value },
    });
    t.is(toSeconds((await storedCookie(client, sid)).originalMaxAge), HOUR / 1000, "adopted: the app's cookie on the first save");

    // Node changes one value and saves; Node's own values cross back too, {} and {"0":…} included.
    t.is((await get(`${app.url}/bump`, cookieFor(sid))).body.session.node_visits.value, 1);
    await get(`${app.url}/set?key=prefs&json=${encodeURIComponent('{}')}`, cookieFor(sid));
    await get(`${app.url}/set?key=byIndex&json=${encodeURIComponent('{"0":"a","1":"b"}')}`, cookieFor(sid));

    const back = await php(port, sid, 'bump');
    t.is(back.code, 0, back.stderr);
    t.like(back.json.session, {
      user: { type: 'string', value: 'ada' },
      visits: { type: 'int', value: 3 },
      price: { type: 'float', value: '10.0' },
      ratio: { type: 'float', value: '0.5' },
      admin: { type: 'bool', value: true },
      nothing: { type: 'null', value: null },
      tags: { type: 'array', value: ['a', 'b'] },
      cart: { type: 'array', value: { sku: 'A1', qty: 2 } },
      note: { type: 'string', value: 'two\nlines' },
      bytes: { type: 'bytes', value: 'fffe' },
      object: { type: 'ArrayObject', value: { x: 1 } },
      node_visits: { type: 'int', value: 1 },
      php_visits: { type: 'int', value: 1 },
    });
    t.is(back.json.session.cookie.type, 'array');

    const again = await get(`${app.url}/whoami`, cookieFor(sid));
    t.like(again.body.session, {
      price: { type: 'number', value: 10 },
      prefs: { type: 'object', value: {} },
      byIndex: { type: 'object', value: { 0: 'a', 1: 'b' } },
      php_visits: { type: 'number', value: 1 },
      node_visits: { type: 'number', value: 1 },
    });
    t.deepEqual(await client.ids(), [sid], 'one session, never two');
  });

  phpTest(`${mode}: a session PHP emptied ($_SESSION = []) is still the user's session in express`, async (t) => {
    const { port, app, client } = await setup(t, locking);
    const sid = newId();
    t.is((await php(port, sid, 'login')).code, 0);
    t.is((await php(port, sid, 'empty')).code, 0);
    const seen = await get(`${app.url}/whoami`, cookieFor(sid));
    t.is(seen.body.id, sid);
    t.deepEqual(seen.body.session, {});
    const bumped = await get(`${app.url}/bump`, cookieFor(sid));
    t.is(bumped.body.id, sid);
    t.deepEqual(await client.ids(), [sid]);
    const read = await php(port, sid, 'read');
    t.deepEqual(read.json.session.node_visits, { type: 'int', value: 1 });
  });

  phpTest(`${mode}: keys named constructor, __proto__, toString and hasOwnProperty cross both ways as plain data`, async (t) => {
    const { port, app } = await setup(t, locking);
    const sid = newId();
    t.is((await php(port, sid, 'prototype-keys')).code, 0);
    const seen = await get(`${app.url}/whoami`, cookieFor(sid));
    // (JSON.parse: in an object literal, `__proto__:` would set the prototype instead.)
    t.deepEqual(seen.body.session, JSON.parse(`{
      "constructor": { "type": "string", "value": "from php" },
      "__proto__": { "type": "object", "value": { "polluted": true } },
      "toString": { "type": "string", "value": "not a function" },
      "hasOwnProperty": { "type": "number", "value": 7 }
    }`));
    await get(`${app.url}/set?key=toString&json=${encodeURIComponent('"changed by node"')}`, cookieFor(sid));
    const read = await php(port, sid, 'read');
    t.like(read.json.session, {
      constructor: { type: 'string', value: 'from php' },
      toString: { type: 'string', value: 'changed by node' },
      hasOwnProperty: { type: 'int', value: 7 },
    });
    t.deepEqual(read.json.session.__proto__, { type: 'array', value: { polluted: true } });
  });

  phpTest(`${mode}: an expired express cookie ends the session for PHP too, and PHP requests move it on`, async (t) => {
    const { port, app, client } = await setup(t, locking);
    const cookie = (expires: number) => ({ originalMaxAge: HOUR, expires: new Date(expires).toISOString(), httpOnly: true, path: '/' });
    const expired = newId();
    const refused = newId();
    await call((done) => app.store.set(expired, { cookie: cookie(Date.now() + HOUR), user: 'old' }, done));
    await call((done) => app.store.set(refused, { cookie: cookie(Date.now() + HOUR), user: 'old' }, done));
    // Expired since: written as another client would, past the store's own check.
    for (const sid of [expired, refused]) {
      await client.open(sid, 'rw');
      await client.put('cookie', JSON.stringify(cookie(Date.now() - 1000)));
      await client.close();
    }
    const read = await php(port, expired, 'read');
    t.is(read.code, 0, read.stderr);
    t.deepEqual(read.json.session, {}, 'PHP finds it gone');
    const strict = await php(port, refused, 'strict');
    t.not(strict.json.id, refused, 'use_strict_mode refuses its id');

    const active = newId();
    const soon = Date.now() + 60_000;
    await call((done) => app.store.set(active, { cookie: cookie(soon), user: 'kim' }, done));
    t.is((await php(port, active, 'read')).code, 0);
    const afterRead = Date.parse((await storedCookie(client, active)).expires);
    t.true(afterRead - soon > HOUR - 120_000, `an unchanged PHP request (lazy_write) moved it by about an hour (${afterRead - soon} ms)`);
    t.is((await php(port, active, 'bump')).code, 0);
    t.true(Date.parse((await storedCookie(client, active)).expires) >= afterRead, 'so does a PHP write');
    t.is((await get(`${app.url}/whoami`, cookieFor(active))).body.session.user.value, 'kim');
  });
}
