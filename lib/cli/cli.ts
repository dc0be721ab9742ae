import { readFile } from 'node:fs/promises';
import type { ConnectionOptions as TlsOptions } from 'node:tls';
import { read } from 'read';
import yargs, { type Argv } from 'yargs';
import { CLIENT_EXIT, runClient } from './client-repl.js';
import { CONFIG_KEYS, validateConfig, type SessionServerConfig } from '../config/config.js';
import { DEFAULTS } from '../config/defaults.js';
import { loadConfigFile } from './config-file.js';
import { effectiveConfig, formatConfigRows } from './effective-config.js';
import { checkServeFlags, describeYargsFailure, givenOnCommandLine } from './flag-errors.js';
import { checkStartable } from './start-checks.js';
import { packageInfo } from '../core/package-info.js';
import { hashPassword } from '../auth/password.js';
import { SessionServer } from '../session/session-server.js';
import { STORAGE_NAMES } from '../storage/options.js';

/** Flags of `serve`; each is also `SESSIONSERVER_<NAME>` in the environment and a config field. */
function serveOptions(args: Argv) {
  return args
    .option('config', { type: 'string', describe: 'config file (default: ./sessionserver.config.{ts,mts,js,mjs} if present)' })
    .option('host', { type: 'string', describe: 'address to bind', defaultDescription: DEFAULTS.host })
    .option('port', { type: 'number', describe: 'TCP port', defaultDescription: String(DEFAULTS.port) })
    .option('storage', { type: 'string', choices: STORAGE_NAMES, describe: 'storage driver', defaultDescription: DEFAULTS.storage })
    .option('save-path', { type: 'string', describe: 'folder of the filesystem store', defaultDescription: DEFAULTS.savePath })
    .option('fsync', { type: 'boolean', describe: 'fsync each filesystem write (survives power loss)', defaultDescription: 'false' })
    .option('lock-timeout', { type: 'number', describe: 'ms a writer waits for a locked session', defaultDescription: String(DEFAULTS.lockTimeout) })
    .option('max-lifetime', { type: 'number', describe: 'seconds without access before a session expires', defaultDescription: String(DEFAULTS.maxLifetime) })
    .option('gc-interval', { type: 'number', describe: 'seconds between expiry sweeps (0: off)', defaultDescription: String(DEFAULTS.gcInterval) })
    .option('max-line-length', { type: 'number', describe: 'longest request line in bytes', defaultDescription: String(DEFAULTS.maxLineLength) })
    .option('max-connections', { type: 'number', describe: 'connections beyond this are refused', defaultDescription: String(DEFAULTS.maxConnections) })
    .option('idle-timeout', { type: 'number', describe: 'seconds of client silence before disconnect (0: never)', defaultDescription: String(DEFAULTS.idleTimeout) })
    .option('max-unknown-commands', { type: 'number', describe: 'unknown commands in a row before disconnect', defaultDescription: String(DEFAULTS.maxUnknownCommands) })
    .option('redis-url', { type: 'string', describe: 'redis store: redis://, rediss://, redis+sentinel://, redis+cluster:// URL', defaultDescription: DEFAULTS.redisUrl })
    .option('redis-prefix', { type: 'string', describe: 'redis store: key prefix', defaultDescription: DEFAULTS.redisPrefix })
    .option('postgres-url', { type: 'string', describe: 'postgres store: postgres://user:password@host:port/database', defaultDescription: "pg's PG* variables" })
    .option('postgres-table', { type: 'string', describe: 'postgres store: table (or schema.table)', defaultDescription: DEFAULTS.postgresTable })
    .option('postgres-pool-size', { type: 'number', describe: 'postgres store: connections in the pool', defaultDescription: String(DEFAULTS.postgresPoolSize) })
    .option('lock-lease', { type: 'number', describe: 'redis/postgres: ms a writer lock outlives a dead instance', defaultDescription: String(DEFAULTS.lockLease) })
    .option('storage-timeout', { type: 'number', describe: 'ms one storage operation may take before err Storage unavailable', defaultDescription: String(DEFAULTS.storageTimeout) })
    .option('max-session-size', { type: 'number', describe: 'bytes one session may hold', defaultDescription: String(DEFAULTS.maxSessionSize) })
    .option('max-memory', { type: 'number', describe: 'memory store: bytes of session data in all (writes beyond get err)', defaultDescription: 'a quarter of the heap limit' })
    .option('max-input-buffer', { type: 'number', describe: 'bytes of unfinished request lines across all connections', defaultDescription: String(DEFAULTS.maxInputBuffer) })
    .option('tls-cert', { type: 'string', describe: 'serve TLS only: certificate chain (PEM file)' })
    .option('tls-key', { type: 'string', describe: 'serve TLS only: private key (PEM file)' })
    .option('tls-ca', { type: 'string', describe: 'mutual TLS: require client certificates signed by this CA (PEM file)' })
    .option('metrics-port', { type: 'number', describe: 'serve Prometheus /metrics and /healthz on this HTTP port' })
    .option('metrics-host', { type: 'string', describe: 'address of the metrics port', defaultDescription: DEFAULTS.metricsHost })
    .option('log-format', { type: 'string', choices: ['json', 'pretty'], describe: 'log lines as JSON or coloured text', defaultDescription: 'pretty on a terminal, else json' })
    .option('redis-wait-replicas', { type: 'number', describe: 'redis: replicas that must acknowledge a write before close/commit answer ok', defaultDescription: '0' })
    .option('list-session-ids', { type: 'boolean', describe: 'allow the ids command (lists every session id: trusted clients only)', defaultDescription: 'false' })
    .option('commands-dir', { type: 'string', describe: 'folder of command files', defaultDescription: DEFAULTS.commandsDir })
    .option('plugin', { type: 'string', array: true, describe: 'plugin to apply (shipped: auth, logging, hot-reload; or a path / package); repeatable' })
    .option('watch', { type: 'boolean', describe: 'reload command files and plugins on save (development)', defaultDescription: 'false' })
    .option('log-level', { type: 'string', choices: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], describe: 'log level', defaultDescription: 'info' });
}

/** Config fields a flag of the same name sets (camelCase, as yargs exposes them); the rest have flags of their own. */
const CLI_FIELDS = CONFIG_KEYS.filter((key) => !['logger', 'plugins', 'tls', 'metrics'].includes(key));

/** Config file < environment < command line; unset flags leave the file's values alone. */
export async function resolveServeConfig(argv: Record<string, unknown>): Promise<SessionServerConfig> {
  return (await resolveServeLayers(argv)).config;
}

/** The configuration serve would use, with the config file's own part (`sessionserver config` tells them apart). */
async function resolveServeLayers(argv: Record<string, unknown>): Promise<{ config: SessionServerConfig; fileConfig: SessionServerConfig; filePath?: string }> {
  const { config: fileConfig, path: filePath } = await loadConfigFile(argv.config as string | undefined);
  const overrides: Record<string, unknown> = {};
  for (const field of CLI_FIELDS) if (argv[field] !== undefined) overrides[field] = argv[field];
  const config: SessionServerConfig = { commandsDir: DEFAULTS.commandsDir, ...fileConfig, ...overrides };
  const plugins = [...(fileConfig.plugins ?? []), ...((argv.plugin as string[] | undefined) ?? [])];
  // hot-reload declares `enforce: 'post'`: it applies after every other plugin, wherever it is listed.
  if (argv.watch && !plugins.includes('hot-reload')) plugins.push('hot-reload');
  if (plugins.length) config.plugins = plugins;
  if (argv.tlsCert !== undefined || argv.tlsKey !== undefined || argv.tlsCa !== undefined) {
    config.tls = { ...config.tls, cert: argv.tlsCert as string, key: argv.tlsKey as string, ...(argv.tlsCa !== undefined ? { ca: argv.tlsCa as string, requestCert: true } : {}) };
  }
  if (argv.metricsPort !== undefined) config.metrics = { ...config.metrics, port: argv.metricsPort as number, host: (argv.metricsHost as string | undefined) ?? config.metrics?.host };
  return { config: validateConfig(config, 'command line / environment'), fileConfig, ...(filePath ? { filePath } : {}) };
}

/** serve's flags, checked before anything starts (ranges, values missing) with one-line answers. */
function checkedServeOptions(args: Argv, commandLine: readonly string[]) {
  return acceptOthersVariables(serveOptions(args), serveOptions, commandLine).check((argv, options) =>
    checkServeFlags(argv, options as unknown as { string: string[]; number: string[] }, commandLine),
  );
}

/** The option names a builder declares (kebab-case, as declared). */
function optionKeys(builder: (args: Argv) => Argv): string[] {
  return Object.keys((builder(yargs([])) as unknown as { getOptions(): { key: Record<string, unknown> } }).getOptions().key);
}

/**
 * One environment serves every subcommand: a container's SESSIONSERVER_STORAGE is there when
 * `sessionserver client` runs in it, a shell's SESSIONSERVER_AUTH when serve starts from it. A
 * variable another subcommand reads is accepted (and ignored) here; a misspelt one is still
 * refused, and so is another subcommand's flag on this command line.
 */
function acceptOthersVariables<T>(args: Argv<T>, own: (args: Argv) => Argv, commandLine: readonly string[]): Argv<T> {
  const ownKeys = new Set(optionKeys(own));
  const readers: Array<(args: Argv) => Argv> = [serveOptions, clientOptions];
  const foreign = [...new Set(readers.flatMap(optionKeys))].filter((key) => !ownKeys.has(key) && key !== 'request');
  for (const key of foreign) args.option(key, { hidden: true });
  return args.check(() => {
    const given = foreign.find((key) => givenOnCommandLine(key, commandLine));
    return given === undefined ? true : `Unknown argument: ${given}`;
  });
}

async function serve(argv: Record<string, unknown>, commandLine: readonly string[]): Promise<void> {
  const config = await resolveServeConfig(argv);
  checkStartable(config, commandLine);
  let stopping = false;
  const server = new SessionServer(config);
  // By default SIGHUP ends a process; here it reloads command files, plugins and TLS
  // certificates, as --watch would, once the server is up. reload() logs and never throws.
  let serving = false;
  process.on('SIGHUP', () => {
    if (!serving || stopping) return;
    server.log.info({ signal: 'SIGHUP' }, 'reloading command files, plugins and TLS certificates');
    void server.reload();
  });
  // Signals are handled from before the port opens: a supervisor (or a test) that sees the port
  // accept may signal at once. One that arrives while starting (a store still connecting, say)
  // ends the process at once: no client has been served, nothing is held.
  const onSignal = (signal: string) => {
    if (serving) return stop(signal);
    server.log.info({ signal }, 'stopping before the server started');
    process.exit(0);
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  const address = await server.listen();
  serving = true;
  const stop = (signal: string) => {
    if (stopping) {
      server.log.warn({ signal }, 'second signal: exiting without waiting');
      process.exit(1);
    }
    stopping = true;
    server.log.info({ signal }, 'stopping: finishing commands and writing open sessions');
    // A store that hangs must not keep the process alive forever.
    setTimeout(() => {
      server.log.error('shutdown took longer than 30 s; exiting');
      process.exit(1);
    }, 30_000).unref();
    server.close().then(
      () => {
        server.log.info({ signal }, 'sessionserver stopped');
        process.exit(0);
      },
      (error: unknown) => {
        server.log.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  const tls = !config.tls ? 'off' : config.tls.ca ? 'mutual' : 'on';
  server.log.info({ host: address.address, port: address.port, storage: server.store.name, tls }, 'sessionserver listening');
}

/** `sessionserver config`: what serve would run with, each value with its source; secrets redacted. */
async function printConfig(argv: Record<string, unknown>, commandLine: readonly string[]): Promise<void> {
  const { config, fileConfig, filePath } = await resolveServeLayers(argv);
  const rows = effectiveConfig({ argv, args: commandLine, env: process.env, fileConfig, config });
  if (argv.json) console.log(JSON.stringify({ configFile: filePath ?? null, settings: rows }, null, 2));
  else console.log(`${filePath ? `# config file: ${filePath}` : '# no config file'}\n${formatConfigRows(rows)}`);
}

/** The flag names of the subcommand the command line names, for "did you mean" answers. */
function flagNames(commandLine: readonly string[]): string[] {
  const command = commandLine[0];
  return optionKeys(command === 'client' ? clientOptions : command === 'hash-password' ? (args: Argv) => args : serveOptions);
}

/** The subcommand whose help a mistake should point to. */
function helpHint(args: readonly string[]): string {
  const first = args[0];
  if (first !== undefined && ['serve', 'config', 'hash-password', 'client'].includes(first)) return `sessionserver ${first} --help`;
  // A first word that is no command is the mistake itself; otherwise the flags were serve's.
  return first !== undefined && !first.startsWith('-') ? 'sessionserver --help' : 'sessionserver serve --help';
}

async function printPasswordHash(): Promise<void> {
  // From stdin, never from argv: argv shows up in `ps` and shell history.
  const password = process.stdin.isTTY ? await askPasswordTwice() : await readAll(process.stdin);
  if (password === '') throw new Error('hash-password: give the password on standard input');
  console.log(await hashPassword(password));
}

/** On a terminal: typed without echo, twice, prompts on stderr so stdout holds the hash alone. */
async function askPasswordTwice(): Promise<string> {
  const ask = (prompt: string) => read({ prompt, silent: true, replace: '', output: process.stderr });
  const password = await ask('Password: ');
  if (password !== '' && (await ask('Repeat password: ')) !== password) throw new Error('hash-password: the passwords differ');
  return password;
}

async function readAll(input: NodeJS.ReadableStream): Promise<string> {
  let text = '';
  for await (const chunk of input) text += chunk;
  return text.replace(/\r?\n$/, '');
}

/** Flags of `client`; `--` ends them, so `sessionserver client -- open <sid> r` sends that line. */
function clientOptions(args: Argv) {
  return args
    .positional('request', { type: 'string', array: true, describe: 'one request to send (one-shot); none: a prompt, or requests from stdin' })
    .option('host', { type: 'string', describe: 'server address', defaultDescription: DEFAULTS.host })
    .option('port', { type: 'number', describe: 'server port', defaultDescription: String(DEFAULTS.port) })
    .option('tls', { type: 'boolean', describe: 'connect with TLS', defaultDescription: 'false' })
    .option('tls-ca', { type: 'string', describe: 'TLS: trust server certificates signed by this CA (PEM file); implies --tls' })
    .option('tls-cert', { type: 'string', describe: 'mutual TLS: client certificate (PEM file); implies --tls' })
    .option('tls-key', { type: 'string', describe: 'mutual TLS: key of the client certificate (PEM file)' })
    .option('auth', { type: 'string', describe: 'log in first: <token> or "<user> <password>" (prefer SESSIONSERVER_AUTH: flags show in ps)' })
    .option('timeout', { type: 'number', describe: 'ms to wait for the connection and for each reply', defaultDescription: '30000' })
    .option('history', { type: 'boolean', describe: 'keep prompt history in ~/.sessionserver_history', default: true });
}

async function runClientCommand(argv: Record<string, unknown>): Promise<void> {
  // Words after `--` land in `_`, behind the command name.
  const request = [...((argv.request as unknown[] | undefined) ?? []), ...((argv._ as unknown[]).slice(1))].map(String);
  let tls: boolean | TlsOptions | undefined;
  try {
    tls = await clientTls(argv);
  } catch (error) {
    console.error((error as Error).message);
    process.exitCode = CLIENT_EXIT.connectionError;
    return;
  }
  process.exitCode = await runClient({
    host: argv.host as string | undefined,
    port: argv.port as number | undefined,
    tls,
    auth: argv.auth as string | undefined,
    timeout: argv.timeout as number | undefined,
    command: request,
    historyFile: argv.history === false ? null : undefined,
  });
}

/** `--tls` alone, or the PEM files of `--tls-ca/--tls-cert/--tls-key` as node:tls options. */
async function clientTls(argv: Record<string, unknown>): Promise<boolean | TlsOptions | undefined> {
  const files = { ca: argv.tlsCa, cert: argv.tlsCert, key: argv.tlsKey } as Record<'ca' | 'cert' | 'key', string | undefined>;
  if (files.ca === undefined && files.cert === undefined && files.key === undefined) return argv.tls as boolean | undefined;
  if ((files.cert === undefined) !== (files.key === undefined)) throw new Error('--tls-cert and --tls-key go together');
  const options: TlsOptions = {};
  for (const [name, path] of Object.entries(files) as Array<['ca' | 'cert' | 'key', string | undefined]>) {
    if (path === undefined) continue;
    try {
      options[name] = await readFile(path);
    } catch (error) {
      throw new Error(`--tls-${name} ${path}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message}`);
    }
  }
  return options;
}

export async function main(args: string[]): Promise<void> {
  await yargs(args)
    .scriptName('sessionserver')
    .env('SESSIONSERVER')
    .command(['serve', '$0'], 'run the session server (the default command)', (y) => checkedServeOptions(y, args), (argv) => serve(argv, args))
    .command(
      'config',
      'print the configuration serve would use and where each value came from (flag, env, file, default); secrets redacted',
      (y) => checkedServeOptions(y, args).option('json', { type: 'boolean', describe: 'print JSON' }),
      (argv) => printConfig(argv, args),
    )
    .command('hash-password', 'print a password hash for the auth plugin (asked without echo on a terminal, else read from stdin)', (y) => acceptOthersVariables(y, (a) => a, args), printPasswordHash)
    .command('client [request..]', 'talk to a server: a prompt like redis-cli, one request, or requests from stdin', (y) => acceptOthersVariables(clientOptions(y), clientOptions, args), runClientCommand)
    .strict()
    .fail((message, error) => {
      // A check() that returns a text hands it over as the error too; anything thrown is rethrown.
      if (error && typeof error !== 'string') throw error;
      // One line: what is wrong and where the help is, not the whole help.
      console.error(`${describeYargsFailure(message, args, flagNames(args), process.env, [...optionKeys(serveOptions), ...optionKeys(clientOptions)])} (see ${helpHint(args)})`);
      process.exit(2);
    })
    .version(packageInfo.version)
    .help()
    .alias('h', 'help')
    .alias('v', 'version')
    .parseAsync();
}
