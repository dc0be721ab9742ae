import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import test from 'ava';
import { GENERIC_CODES, REPLY_TEXTS } from '../lib/protocol/replies.js';
import { REPO_ROOT } from './support/cli-process.js';
import { serveFlags } from './support/serve-flags.js';
import { startServer } from './support/server.js';

// docs/protocol.md and the README against the code: a command, reply code or flag added,
// renamed or removed without the documentation following makes these fail.

const PROTOCOL_DOC = 'docs/protocol.md';
const read = (path: string) => readFile(join(REPO_ROOT, path), 'utf8');

/** A code span as Markdown writes it: inside a table, `|` is escaped. */
function mentions(doc: string, text: string): boolean {
  return doc.includes(`\`${text}\``) || doc.includes(`\`${text.replaceAll('|', '\\|')}\``);
}

/** One section of a Markdown document, from its heading to the next heading of the same or a higher level. */
function section(doc: string, heading: string): string {
  const start = doc.indexOf(`\n${heading}\n`);
  if (start === -1) throw new Error(`no section ${heading}`);
  const level = heading.indexOf(' ');
  const rest = doc.slice(start + heading.length + 2);
  const end = rest.search(new RegExp(`\\n#{1,${level}} `));
  return end === -1 ? rest : rest.slice(0, end);
}

test('protocol.md shows every command `help` lists (built-ins, shipped command files, auth plugin) with its usage, and every failure text', async (t) => {
  const { server, connect } = await startServer(t, {
    commandsDir: join(REPO_ROOT, 'commands'),
    plugins: [['auth', { tokens: ['docs-test-token'] }]],
  });
  const doc = await read(PROTOCOL_DOC);
  const client = await connect();
  const help = await client.request('help');
  t.regex(help ?? '', /^ok /);
  const usages = help!.slice(3).split('; ');
  for (const name of ['open <sid> [r|w|rw]', 'put_all <a:…|{json}>', 'incr <key> [by]', 'auth <token> | auth <user> <password>']) {
    t.true(usages.includes(name), `help lists ${name}`);
  }
  for (const usage of usages) t.true(mentions(doc, usage), `protocol.md shows \`${usage}\``);
  for (const entry of server.commands.list()) {
    if (entry.failure === `Could not run ${entry.name}`) continue; // the documented default
    const given = doc.includes(`\`${entry.failure}\``) || doc.includes(`\`err ${entry.failure}\``);
    t.true(given, `protocol.md gives ${entry.name}'s failure text \`${entry.failure}\``);
  }
});

test('protocol.md lists every reply code with its exact text, and no code that does not exist', async (t) => {
  const doc = await read(PROTOCOL_DOC);
  const errors = section(doc, '### Errors');
  for (const [code, template] of Object.entries(REPLY_TEXTS)) {
    const text = template.replace(/\{\w+\}/g, 'N');
    t.true(errors.includes(`| \`${code}\` | \`${text}\` |`), `${code}: ${text}`);
  }
  for (const code of GENERIC_CODES) t.true(errors.includes(`| \`${code}\` |`), code);
  const known = new Set<string>([...Object.keys(REPLY_TEXTS), ...GENERIC_CODES]);
  for (const [code] of doc.matchAll(/\bE_[A-Z_]+\b/g)) t.true(known.has(code), `${code} is documented but not defined`);
});

test('protocol.md names only real serve flags for its limits', async (t) => {
  const limits = section(await read(PROTOCOL_DOC), '### Limits');
  const flags = [...limits.matchAll(/`(--[a-z0-9-]+)`/g)].map((match) => match[1]!);
  t.true(flags.length >= 6, 'the limits name their flags');
  const real = await serveFlags();
  for (const flag of flags) t.true(real.has(flag), `${flag} is not a flag of sessionserver serve`);
});

test('README links only to files inside the repository, among them the protocol reference', async (t) => {
  const readme = await read('README.md');
  const targets = [...readme.matchAll(/\]\(([^)\s]+)\)/g)].map((match) => match[1]!).filter((target) => !/^(https?:|mailto:|#)/.test(target));
  t.true(targets.includes(PROTOCOL_DOC), 'README links docs/protocol.md');
  for (const target of targets) {
    const path = resolve(REPO_ROOT, target.split('#')[0]!);
    t.false(relative(REPO_ROOT, path).startsWith('..'), `${target} points outside the repository`);
    t.true(existsSync(path), `${target} exists`);
  }
  t.false(readme.includes('shared/PROTOCOL.md'));
});

test('README installs the PHP handler under the name clients/php/composer.json declares', async (t) => {
  const readme = await read('README.md');
  const composer = JSON.parse(await read('clients/php/composer.json')) as { name: string };
  t.true(readme.includes(`"${composer.name}"`), `README requires ${composer.name}`);
  // The path repository points where npm puts the package, and the package ships clients/.
  const pathRepository = /"url": "([^"]+)"/.exec(readme)?.[1];
  t.is(pathRepository, 'node_modules/sessionserver/clients/php');
  t.true(readme.includes("__DIR__ . '/node_modules/sessionserver/clients/php/autoload.php'"), 'the plain require names the shipped autoloader');
  t.true(existsSync(join(REPO_ROOT, 'clients/php/autoload.php')));
});

test('the package ships the protocol reference, the LICENSE and the PHP client', async (t) => {
  const packed = await new Promise<string>((resolvePack, reject) => {
    execFile('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: REPO_ROOT }, (error, stdout) => (error ? reject(error) : resolvePack(stdout)));
  });
  const files = new Set((JSON.parse(packed) as Array<{ files: Array<{ path: string }> }>)[0]!.files.map((file) => file.path));
  for (const path of [PROTOCOL_DOC, 'LICENSE', 'README.md', 'clients/php/autoload.php', 'clients/php/composer.json']) t.true(files.has(path), path);

  const manifest = JSON.parse(await read('package.json')) as { license: string };
  t.is(manifest.license, 'MIT');
  t.regex(await read('LICENSE'), /^MIT License\n\nCopyright \(c\) \d{4} /);
});
