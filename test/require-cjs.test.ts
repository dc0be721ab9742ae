import { execFile } from 'node:child_process';
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import test, { type ExecutionContext } from 'ava';
import { REPO_ROOT } from './support/cli-process.js';
import { startServer, tempDir } from './support/server.js';

// A CommonJS app (Node >= 20.19) requires the package by its name, as an express app
// with `"type": "commonjs"` would: through the `exports` map of the built package (dist/).

const run = promisify(execFile);

/** A folder whose node_modules/sessionserver is this repository, holding one .cjs script. */
async function commonJsApp(t: ExecutionContext, source: string): Promise<string> {
  const dir = await tempDir(t, 'sessionserver-cjs-');
  await mkdir(join(dir, 'node_modules'));
  await symlink(REPO_ROOT, join(dir, 'node_modules', 'sessionserver'), 'dir');
  await writeFile(join(dir, 'package.json'), JSON.stringify({ name: 'cjs-app', private: true, type: 'commonjs' }));
  const script = join(dir, 'app.cjs');
  await writeFile(script, source);
  return script;
}

async function runScript(script: string, env: NodeJS.ProcessEnv = {}): Promise<{ stdout: string; stderr: string }> {
  // express and express-session come from the repository's node_modules, as the app's own would.
  return run(process.execPath, [script], { env: { ...process.env, NODE_PATH: join(REPO_ROOT, 'node_modules'), ...env }, timeout: 30_000 });
}

test('require() loads every entry point of the exports map, with the names import() sees', async (t) => {
  const manifest = JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')) as { exports: Record<string, unknown> };
  const subpaths = Object.keys(manifest.exports).filter((key) => key !== './package.json');
  t.true(subpaths.length >= 5);
  const specifiers = subpaths.map((key) => (key === '.' ? 'sessionserver' : `sessionserver/${key.slice(2)}`));
  const script = await commonJsApp(t, `
    const specifiers = ${JSON.stringify(specifiers)};
    (async () => {
      const result = {};
      for (const specifier of specifiers) {
        const required = Object.keys(require(specifier)).sort();
        const imported = Object.keys(await import(specifier)).sort();
        result[specifier] = { required, imported };
      }
      process.stdout.write(JSON.stringify(result));
    })();
  `);
  const { stdout, stderr } = await runScript(script);
  const result = JSON.parse(stdout) as Record<string, { required: string[]; imported: string[] }>;
  for (const specifier of specifiers) {
    t.true(result[specifier]!.required.length > 0, specifier);
    t.deepEqual(result[specifier]!.required, result[specifier]!.imported, specifier);
  }
  t.true(result.sessionserver!.required.includes('SessionServer'));
  t.true(result['sessionserver/client']!.required.includes('SessionServerStore'));
  t.false(/Error/.test(stderr), stderr);
});

test('a CommonJS express app keeps its sessions in sessionserver through require("sessionserver")', async (t) => {
  const { port, connect } = await startServer(t);
  const script = await commonJsApp(t, `
    const express = require('express');
    const session = require('express-session');
    const { SessionServerStore } = require('sessionserver');
    const client = require('sessionserver/client');
    if (client.SessionServerStore !== SessionServerStore) throw new Error('two copies of SessionServerStore');

    const store = new SessionServerStore({ host: '127.0.0.1', port: Number(process.env.SESSIONSERVER_PORT) });
    const app = express();
    app.use(session({ store, secret: 'cjs-test', resave: false, saveUninitialized: false }));
    app.get('/login', (req, res) => { req.session.user = String(req.query.user); res.json({ id: req.sessionID }); });
    app.get('/whoami', (req, res) => res.json({ id: req.sessionID, user: req.session.user ?? null }));

    const http = app.listen(0, '127.0.0.1', async () => {
      const base = 'http://127.0.0.1:' + http.address().port;
      try {
        const login = await fetch(base + '/login?user=ada');
        const cookie = login.headers.get('set-cookie').split(';')[0];
        const { id } = await login.json();
        const whoami = await (await fetch(base + '/whoami', { headers: { cookie } })).json();
        process.stdout.write(JSON.stringify({ id, whoami }));
      } finally {
        http.close();
        store.close();
      }
    });
  `);
  const { stdout } = await runScript(script, { SESSIONSERVER_PORT: String(port) });
  const { id, whoami } = JSON.parse(stdout) as { id: string; whoami: { id: string; user: string | null } };
  t.deepEqual(whoami, { id, user: 'ada' });
  // The value lives on the session server, readable by any other client.
  const c = await connect();
  t.is(await c.request(`open ${id} r`), 'ok');
  t.is(await c.request('get user'), 'ok ada');
});
