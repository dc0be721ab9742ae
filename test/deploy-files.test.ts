import { execFile, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { BIN, freePort, REPO_ROOT, startCli } from './support/cli-process.js';
import { LineClient } from './support/line-client.js';
import { serveFlags } from './support/serve-flags.js';

// examples/deploy/: no Docker engine and no systemd here, so nothing is built or installed.
// Instead the files are read as Docker and systemd read them, every flag they pass is checked
// against the real CLI, and their commands (CMD, ExecStart, HEALTHCHECK, ExecReload) are run.

const DEPLOY = join(REPO_ROOT, 'examples/deploy');
const DOCKERFILE = join(DEPLOY, 'Dockerfile');
const UNIT = join(DEPLOY, 'sessionserver.service');

interface Instruction {
  keyword: string;
  args: string;
  stage: number;
}

/** Dockerfile instructions with continuation lines joined and comments dropped, each with its stage index. */
function parseDockerfile(text: string): Instruction[] {
  const joined = text.replace(/\\\n/g, ' ');
  const instructions: Instruction[] = [];
  let stage = -1;
  for (const raw of joined.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const [, keyword = '', args = ''] = /^(\S+)\s*(.*)$/.exec(line) ?? [];
    if (keyword.toUpperCase() === 'FROM') stage++;
    instructions.push({ keyword: keyword.toUpperCase(), args: args.trim(), stage });
  }
  return instructions;
}

/** The exec form (`["node", "-e", "…"]`) Docker runs without a shell. */
function execForm(args: string): string[] {
  const parsed: unknown = JSON.parse(args);
  if (!Array.isArray(parsed) || !parsed.every((part) => typeof part === 'string')) throw new Error(`not an exec form: ${args}`);
  return parsed;
}

/** A systemd unit: section → key → values (a key may repeat). */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const section = /^\[(.+)\]$/.exec(line);
    if (section) {
      current = new Map();
      sections.set(section[1]!, current);
      continue;
    }
    const eq = line.indexOf('=');
    if (eq === -1 || !current) throw new Error(`not a unit line: ${line}`);
    const key = line.slice(0, eq).trim();
    current.set(key, [...(current.get(key) ?? []), line.slice(eq + 1).trim()]);
  }
  return sections;
}

/** `--flag value` pairs and bare `--flag`s of an argument list. */
function flagsOf(args: readonly string[]): Map<string, string | true> {
  const flags = new Map<string, string | true>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (!arg.startsWith('--')) continue;
    const next = args[i + 1];
    if (next !== undefined && !next.startsWith('--')) flags.set(arg, args[++i]!);
    else flags.set(arg, true);
  }
  return flags;
}

/** The argument list with these flags' values replaced (or the flags removed, for null). */
function withFlags(args: readonly string[], replacements: Record<string, string | null>): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (!(arg in replacements)) {
      out.push(arg);
      continue;
    }
    const value = replacements[arg];
    if (value !== null) out.push(arg, value!);
    if (args[i + 1] !== undefined && !args[i + 1]!.startsWith('--')) i++;
  }
  return out;
}

async function dockerfile() {
  const instructions = parseDockerfile(await readFile(DOCKERFILE, 'utf8'));
  const runtimeStage = Math.max(...instructions.map((i) => i.stage));
  const runtime = instructions.filter((i) => i.stage === runtimeStage);
  const only = (keyword: string) => {
    const found = runtime.filter((i) => i.keyword === keyword);
    if (found.length !== 1) throw new Error(`runtime stage: expected one ${keyword}, found ${found.length}`);
    return found[0]!;
  };
  const cmd = execForm(only('CMD').args);
  return { instructions, runtimeStage, runtime, only, cmd, cmdFlags: flagsOf(cmd), entrypoint: execForm(only('ENTRYPOINT').args) };
}

async function unit() {
  const sections = parseUnit(await readFile(UNIT, 'utf8'));
  const service = sections.get('Service');
  if (!service) throw new Error('no [Service] section');
  const one = (key: string) => {
    const values = service.get(key);
    if (values?.length !== 1) throw new Error(`[Service] ${key}: expected one value, found ${values?.length ?? 0}`);
    return values[0]!;
  };
  const execStart = one('ExecStart').split(/\s+/);
  return { sections, service, one, execStart, flags: flagsOf(execStart) };
}

async function tempFolder(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'sessionserver-deploy-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Runs a command (HEALTHCHECK, ExecReload's kill) and resolves with its exit code. */
function exitCodeOf(file: string, args: string[]): Promise<number> {
  return new Promise((resolveCode) => {
    execFile(file, args, { timeout: 10_000 }, (error) => resolveCode(error ? Number((error as { code?: unknown }).code ?? 1) || 1 : 0));
  });
}

async function assertServes(t: ExecutionContext, port: number): Promise<void> {
  const client = await LineClient.connect(port);
  t.is(await client.request('ping'), 'ok pong');
  const sid = await client.request('new');
  t.regex(sid ?? '', /^ok [0-9a-f]{32}$/);
  t.is(await client.request('put user alice'), 'ok');
  t.is(await client.request('close'), 'ok');
  client.close();
}

test('serve --help lists the flags this test checks against', async (t) => {
  const flags = await serveFlags();
  for (const flag of ['--host', '--port', '--save-path', '--storage']) t.true(flags.has(flag), flag);
  t.false(flags.has('--no-such-flag'));
});

test('Dockerfile: builds in one stage, runs production dependencies only in another, as a non-root user', async (t) => {
  const { instructions, runtimeStage, runtime } = await dockerfile();
  t.true(runtimeStage >= 1, 'multi-stage');
  const build = instructions.filter((i) => i.stage < runtimeStage);
  const buildRuns = build.filter((i) => i.keyword === 'RUN').map((i) => i.args);
  t.true(buildRuns.some((run) => /\bnpm ci\b/.test(run)), 'the build stage installs from the lock file');
  t.true(buildRuns.some((run) => /\bnpm run build\b/.test(run)), 'the build stage compiles');
  const runtimeRuns = runtime.filter((i) => i.keyword === 'RUN').map((i) => i.args);
  t.true(runtimeRuns.some((run) => /\bnpm ci\b.*--omit=dev/.test(run)), 'the runtime stage installs production dependencies only');
  t.false(runtimeRuns.some((run) => /\bnpm run build\b|\btsc\b/.test(run)), 'no compiler in the runtime stage');
  t.true(runtime.some((i) => i.keyword === 'COPY' && /--from=\S+\s+\S*\bdist\b/.test(i.args)), 'the runtime takes dist/ from the build stage');

  const users = runtime.filter((i) => i.keyword === 'USER').map((i) => i.args.split(':')[0]);
  t.true(users.length > 0, 'the runtime stage sets a USER');
  t.notRegex(users.at(-1)!, /^(root|0)$/, 'the server does not run as root');

  // Every file copied from the build context exists in the repository.
  for (const copy of instructions.filter((i) => i.keyword === 'COPY' && !i.args.includes('--from='))) {
    const sources = copy.args.split(/\s+/).slice(0, -1);
    for (const source of sources) t.true(existsSync(join(REPO_ROOT, source)), `COPY ${source}`);
  }
});

test('Dockerfile: the sessions folder is a volume, both ports are exposed, the health check asks /healthz on the metrics port', async (t) => {
  const { cmd, cmdFlags, only, entrypoint, runtime } = await dockerfile();
  const serveFlagsList = await serveFlags();
  t.is(cmd[0], 'serve');
  for (const flag of cmdFlags.keys()) t.true(serveFlagsList.has(flag), `CMD uses ${flag}, which serve --help does not list`);
  t.deepEqual(entrypoint.slice(0, 2), ['node', 'bin/sessionserver.js']);

  const savePath = cmdFlags.get('--save-path');
  t.is(typeof savePath, 'string');
  t.true(execForm(only('VOLUME').args).includes(savePath as string), 'the save path is a volume');
  t.is(cmdFlags.get('--host'), '0.0.0.0', 'reachable from outside the container');
  t.is(cmdFlags.get('--metrics-host'), '0.0.0.0');

  const exposed = only('EXPOSE').args.split(/\s+/);
  const port = cmdFlags.get('--port') ?? '9090';
  const metricsPort = cmdFlags.get('--metrics-port');
  t.is(typeof metricsPort, 'string');
  t.true(exposed.includes(port as string), `EXPOSE ${port}`);
  t.true(exposed.includes(metricsPort as string), `EXPOSE ${String(metricsPort)}`);

  const healthcheck = runtime.find((i) => i.keyword === 'HEALTHCHECK')!;
  t.truthy(healthcheck);
  const probe = execForm(healthcheck.args.slice(healthcheck.args.indexOf('CMD') + 3).trim());
  t.is(probe[0], 'node', 'slim images have no curl');
  t.regex(probe.join(' '), new RegExp(`http://127\\.0\\.0\\.1:${String(metricsPort)}/healthz`));
});

test("Dockerfile: its CMD serves sessions, and its HEALTHCHECK passes against it and fails once it is gone", async (t) => {
  const { cmd, entrypoint, runtime } = await dockerfile();
  t.true(existsSync(resolve(REPO_ROOT, entrypoint[1]!)), 'the entrypoint script exists (WORKDIR is the package root)');
  const dataDir = await tempFolder(t);
  const metricsPort = await freePort();
  // The container's paths and ports, moved to ones free on this machine.
  const args = withFlags(cmd.slice(1), {
    '--port': null,
    '--host': '127.0.0.1',
    '--metrics-host': '127.0.0.1',
    '--metrics-port': String(metricsPort),
    '--save-path': join(dataDir, 'sessions'),
  });
  const server = await startCli(t, args, { cwd: dataDir });
  await assertServes(t, server.port);
  t.true(existsSync(join(dataDir, 'sessions')), 'sessions are written to the volume folder');

  const healthcheck = runtime.find((i) => i.keyword === 'HEALTHCHECK')!;
  const probe = execForm(healthcheck.args.slice(healthcheck.args.indexOf('CMD') + 3).trim());
  const script = probe.map((part) => part.replace(/127\.0\.0\.1:\d+\//, `127.0.0.1:${metricsPort}/`));
  t.not(script.join(' '), probe.join(' '), 'the probe URL was moved to the test port');
  // The metrics listener may open a moment after the protocol port: retry as Docker's --retries does.
  let healthy = 1;
  for (let attempt = 0; attempt < 50 && healthy !== 0; attempt++) {
    healthy = await exitCodeOf(process.execPath, script.slice(1));
    if (healthy !== 0) await new Promise((r) => setTimeout(r, 100));
  }
  t.is(healthy, 0, 'the health check passes while the server runs');

  server.child.kill('SIGTERM');
  t.is(await server.exited, 0, 'docker stop (SIGTERM) is a clean shutdown');
  t.not(await exitCodeOf(process.execPath, script.slice(1)), 0, 'the health check fails once the server is gone');
});

test('systemd unit: sandboxed, restarted on failure, state in its StateDirectory, reload by SIGHUP', async (t) => {
  const { service, one, execStart, flags } = await unit();
  const serveFlagsList = await serveFlags();
  t.is(execStart[1], 'serve');
  for (const flag of flags.keys()) t.true(serveFlagsList.has(flag), `ExecStart uses ${flag}, which serve --help does not list`);

  const dynamic = service.get('DynamicUser')?.[0] === 'yes';
  const user = service.get('User')?.[0];
  t.true(dynamic || (user !== undefined && user !== 'root' && user !== '0'), 'runs as DynamicUser or a dedicated user');
  const stateDirectory = one('StateDirectory');
  t.is(flags.get('--save-path'), `/var/lib/${stateDirectory}`, 'the filesystem store lives in the StateDirectory');

  for (const [key, value] of [
    ['ProtectSystem', 'strict'],
    ['ProtectHome', 'yes'],
    ['PrivateTmp', 'yes'],
    ['NoNewPrivileges', 'yes'],
    ['Restart', 'on-failure'],
  ]) t.is(one(key!), value, key);
  const families = one('RestrictAddressFamilies').split(/\s+/);
  t.true(families.includes('AF_INET') && families.includes('AF_INET6'), 'TCP clients and stores');
  t.true(Number(one('LimitNOFILE')) > 10_000, 'room for the default max-connections');
  t.regex(one('ExecReload'), /kill -(HUP|SIGHUP|s HUP) \$MAINPID$/);
  t.true(Number(one('TimeoutStopSec')) > 30, 'longer than the server’s own 30 s shutdown bound');
  // V8 compiles to writable, executable memory: this option would kill node at start.
  t.not(service.get('MemoryDenyWriteExecute')?.[0], 'yes');
});

const hasSystemdAnalyze = spawnSync('systemd-analyze', ['--version']).status === 0;

(hasSystemdAnalyze ? test : test.skip)('systemd unit: systemd-analyze verify accepts it without a warning', async (t) => {
  const dir = await tempFolder(t);
  const { execStart } = await unit();
  // verify insists that ExecStart's program exists; here it is not installed globally.
  const text = (await readFile(UNIT, 'utf8')).replace(`ExecStart=${execStart[0]} `, `ExecStart=${BIN} `);
  t.not(text, await readFile(UNIT, 'utf8'));
  const copy = join(dir, 'sessionserver.service');
  await writeFile(copy, text);
  const result = spawnSync('systemd-analyze', ['verify', '--man=no', copy], { encoding: 'utf8' });
  t.is(result.stderr, '', 'no unknown keys, no bad values');
  t.is(result.status, 0);

  // The same check catches a misspelt directive.
  const broken = join(dir, 'broken.service');
  await copyFile(copy, broken);
  await writeFile(broken, text.replace('ProtectSystem=strict', 'ProtectSystm=strict'));
  t.regex(spawnSync('systemd-analyze', ['verify', '--man=no', broken], { encoding: 'utf8' }).stderr, /Unknown key/);
});

test('systemd unit: its ExecStart serves sessions, ExecReload (SIGHUP) keeps it serving, SIGTERM stops it cleanly', async (t) => {
  const { execStart } = await unit();
  const stateDir = await tempFolder(t);
  const args = withFlags(execStart.slice(2), {
    '--port': null,
    '--save-path': stateDir,
    '--metrics-port': String(await freePort()),
  });
  // WorkingDirectory: the configuration folder, empty here.
  const server = await startCli(t, args, { cwd: await tempFolder(t) });
  await assertServes(t, server.port);

  t.true(server.child.kill('SIGHUP'), 'ExecReload signalled the main process');
  await assertServes(t, server.port);
  t.is(server.child.exitCode, null, 'still running after the reload');

  server.child.kill('SIGTERM');
  t.is(await server.exited, 0);
});
