import type { AddressInfo, Server, Socket } from 'node:net';
import type { Logger } from 'pino';
import { DEFAULTS } from '../config/defaults.js';
import { isHttpRequestLine, isTrimmable, parseRequest, type Request } from '../protocol/request.js';
import { replyText } from '../protocol/replies.js';
import { CommandFiles, type CommandDefinition } from './command-files.js';
import { command, CommandRegistry, makeEntry, type CommandEntry, type CommandSpec } from './command.js';
import { CommandClock } from './command-clock.js';
import { Connection } from './connection.js';
import { createLogger } from './logger.js';
import { CommandError, isCommandError } from './errors.js';
import { buildHooks, CORE_HOOKS, hookWithout, type AnyHook, type CoreHooks, type HookFactories } from './hooks.js';
import { InputBudget } from './input-budget.js';
import { createListener, reloadCertificates, type TlsOptions } from './listener.js';
import { connectionsWithin, openFileLimit } from './open-file-limit.js';
import { packageInfo } from './package-info.js';
import { PluginHost, type PluginSpec } from './plugin-host.js';

export interface LineServerLimits {
  /** Longest request line in bytes; a longer one gets `err Line too long` and is discarded. */
  maxLineLength: number;
  /** Connections beyond this are told `err Too many connections` and closed. */
  maxConnections: number;
  /** Seconds without a byte from the client before it is disconnected; 0 = never. */
  idleTimeout: number;
  /** Unknown commands in a row before the connection is closed. */
  maxUnknownCommands: number;
  /** Bytes of unfinished request lines buffered across all connections; past it, reading pauses until lines complete. */
  maxInputBuffer: number;
}

export interface LineServerOptions extends Partial<LineServerLimits> {
  host?: string;
  port?: number;
  logger?: Logger;
  logLevel?: string;
  /** Folder of command files (one command per .ts/.mts/.js/.mjs file). The CLI defaults it to ./commands. */
  commandsDir?: string;
  /** Plugins to apply at start, in order: objects, paths, package names, or [path, options]. */
  plugins?: PluginSpec[];
  /** Serve TLS only (PEM file paths); with `ca`, clients need a certificate it signed. Files are read at listen() and reloadTls(). */
  tls?: TlsOptions;
}

export const DEFAULT_LIMITS: LineServerLimits = {
  maxLineLength: DEFAULTS.maxLineLength,
  maxConnections: DEFAULTS.maxConnections,
  idleTimeout: DEFAULTS.idleTimeout,
  maxUnknownCommands: DEFAULTS.maxUnknownCommands,
  maxInputBuffer: DEFAULTS.maxInputBuffer,
};

/** One step of `reload()`: what it refreshes, and how; it returns (or throws) what failed. */
export interface ReloadStep {
  name: string;
  run(): Promise<Error[] | void>;
}

// A refused client that never closes its side must not hold a file descriptor for long.
const REFUSED_LINGER_MS = 5000;
// After accept failed for want of file descriptors, newcomers are refused this long.
const ACCEPT_BACKOFF_MS = 1000;

const OK = 'ok\r\n';
const SPACE = 0x20;
const MULTILINE_VALUE = `err ${replyText('E_MULTILINE_VALUE')}\r\n`;

function okReply(payload: string | void | undefined): string {
  if (payload === undefined || payload === '') return OK;
  if (payload.indexOf('\n') !== -1 || payload.indexOf('\r') !== -1) return MULTILINE_VALUE;
  return `ok ${payload}\r\n`;
}

function errReply(message: string): string {
  return `err ${message.replace(/[\r\n]+/g, ' ')}\r\n`;
}

const IDLE_TIMEOUT = errReply(replyText('E_IDLE_TIMEOUT'));
const HTTP_REFUSED = errReply(replyText('E_HTTP_REFUSED'));
const UNKNOWN_COMMAND = errReply(replyText('E_UNKNOWN_COMMAND'));
const TOO_MANY_UNKNOWN = errReply(replyText('E_TOO_MANY_UNKNOWN'));

/**
 * The framework core: accepts TCP clients, frames lines, routes each to a `cmd_<word>`
 * method (found by reflection) and enforces limits. It knows nothing of sessions;
 * SessionServer builds the session protocol on it, exactly as a user's subclass would:
 * its own commands, spec fields, guard, hooks and per-connection state.
 */
export class LineServer {
  readonly hooks: CoreHooks;
  private readonly hookFactories: HookFactories;
  readonly commands: CommandRegistry;
  readonly limits: LineServerLimits;
  readonly log: Logger;
  readonly connections = new Set<Connection>();
  /** Bytes of unfinished lines held across connections (maxInputBuffer); connections pause on it. */
  readonly inputBudget: InputBudget;
  readonly counters = { connectionsTotal: 0, connectionsRefused: 0, commands: 0, unknownCommands: 0, errors: 0 };
  readonly startedAt = Date.now();
  readonly plugins: PluginHost = new PluginHost(this);
  /** The commands folder, when one is configured. */
  readonly commandFiles: CommandFiles | null;
  private readonly pluginSpecs: readonly PluginSpec[];
  private readonly tls: TlsOptions | undefined;
  protected readonly defaultHost: string;
  protected readonly defaultPort: number;
  private server: Server | null = null;
  private nextConnectionId = 1;
  private closing: Promise<void> | null = null;
  private reloading: Promise<Error[]> = Promise.resolve([]);
  private acceptBackoffUntil = 0;

  constructor(options: LineServerOptions = {}) {
    this.hookFactories = { ...this.defineHooks() };
    this.hooks = buildHooks(this.hookFactories) as unknown as CoreHooks;
    this.limits = {
      maxLineLength: options.maxLineLength ?? DEFAULT_LIMITS.maxLineLength,
      maxConnections: options.maxConnections ?? DEFAULT_LIMITS.maxConnections,
      idleTimeout: options.idleTimeout ?? DEFAULT_LIMITS.idleTimeout,
      maxUnknownCommands: options.maxUnknownCommands ?? DEFAULT_LIMITS.maxUnknownCommands,
      maxInputBuffer: options.maxInputBuffer ?? DEFAULT_LIMITS.maxInputBuffer,
    };
    this.inputBudget = new InputBudget(this.limits.maxInputBuffer);
    this.defaultHost = options.host ?? DEFAULTS.host;
    this.defaultPort = options.port ?? DEFAULTS.port;
    this.log = options.logger ?? createLogger(options);
    this.commands = CommandRegistry.fromPrototypeChain(this);
    this.commandFiles = options.commandsDir ? new CommandFiles(this, options.commandsDir) : null;
    this.pluginSpecs = options.plugins ?? [];
    this.tls = options.tls;
  }

  /** The hooks this server offers, as factories; a subclass adds its own to its parent's. */
  protected defineHooks(): HookFactories {
    return CORE_HOOKS;
  }

  /**
   * Adds a hook to this server's set unless it has one by that name, and returns it: how a
   * concern that is not the core's (authentication) offers its hook point.
   */
  defineHook<H extends AnyHook>(name: string, make: () => H): H {
    const hooks = this.hooks as unknown as Record<string, AnyHook>;
    if (!(name in hooks)) {
      this.hookFactories[name] = make;
      hooks[name] = make();
    }
    return hooks[name] as H;
  }

  /** Removes the taps whose functions are given, from every hook (plugin unload). */
  removeTaps(fns: ReadonlySet<Function>): void {
    if (fns.size === 0) return;
    const hooks = this.hooks as unknown as Record<string, AnyHook>;
    for (const [name, hook] of Object.entries(hooks)) {
      if (hook.taps.some((tap) => fns.has(tap.fn))) hooks[name] = hookWithout(hook, this.hookFactories[name]!, fns);
    }
  }

  /**
   * Adds (or replaces) a command at run time: how plugins add theirs. The entry is the same
   * kind the registry builds from `cmd_` methods, so `help` and the guards see it too.
   */
  addCommand<Spec extends CommandSpec>(definition: CommandDefinition<Spec>, source = 'plugin'): CommandEntry<Spec> {
    const { name, run, ...spec } = definition;
    const entry = makeEntry(name.toLowerCase(), run, spec as unknown as Spec, source);
    this.commands.set(entry);
    return entry;
  }

  /** Checks the fields a subclass adds to command specs (for command files); throws a message naming the field. */
  validateCommandSpec(_spec: Record<string, unknown>): void {}

  /** Starts accepting clients. Port 0 picks a free port; read it from `address()`. */
  async listen(options: { port?: number; host?: string } = {}): Promise<AddressInfo> {
    this.fitConnectionsToFileLimit();
    // TLS files are read first: a bad one stops the start before the store opens.
    // allowHalfOpen: a client that sends FIN after its last line still gets every reply.
    const server = await createListener({ noDelay: true, allowHalfOpen: true }, this.tls, (socket) => this.accept(socket), (error, remoteAddress) => {
      this.log.debug({ code: error.code, reason: error.message, remoteAddress }, 'TLS handshake failed');
    });
    await this.beforeListen();
    // Bad command files are reported and skipped; a bad plugin stops the start (auth must not fail open).
    await this.commandFiles?.loadAll();
    await this.plugins.loadAll(this.pluginSpecs);
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? this.defaultPort, options.host ?? this.defaultHost, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (error) => this.onServerError(error));
    this.startIdleSweep();
    const address = server.address() as AddressInfo;
    await this.hooks.listening.promise(address);
    return address;
  }

  /** True when clients must present a certificate signed by `tls.ca` (mutual TLS): what certificate logins rely on. */
  get mutualTls(): boolean {
    return this.tls?.ca !== undefined && this.tls.requestCert !== false;
  }

  /**
   * Reads the TLS certificate files again (renewals without restart): new connections use
   * them. A bad file keeps the current ones in service and throws a ConfigError naming it.
   */
  async reloadTls(): Promise<void> {
    if (this.tls && this.server) await reloadCertificates(this.server, this.tls);
  }

  /**
   * Reloads command files and plugins from disk, as `--watch` would on save (SIGHUP), and the
   * TLS certificates. A file that fails to load keeps its previous version in service; the
   * outcome is logged. Never throws: resolves with the failures. Reloads run one at a time.
   */
  reload(): Promise<Error[]> {
    this.reloading = this.reloading.then(() => this.runReload());
    return this.reloading;
  }

  /** What `reload()` refreshes, in order. A subclass adds steps: `[...super.reloadSteps(), step]`. */
  protected reloadSteps(): ReloadStep[] {
    return [
      { name: 'commands', run: async () => (await this.commandFiles?.reloadAll()) ?? [] },
      { name: 'plugins', run: () => this.plugins.reloadAll() },
      { name: 'tls', run: () => this.reloadTls() },
    ];
  }

  private async runReload(): Promise<Error[]> {
    const failures: Error[] = [];
    for (const step of this.reloadSteps()) {
      try {
        failures.push(...((await step.run()) ?? []));
      } catch (error) {
        const err = error instanceof Error ? error : new Error(String(error));
        this.log.error({ err, step: step.name }, 'reload step failed; the previous version stays');
        failures.push(err);
      }
    }
    const outcome = { commands: this.commandFiles?.size ?? 0, plugins: this.plugins.names().length, failures: failures.length };
    if (failures.length > 0) this.log.warn(outcome, 'reload finished with failures; what failed keeps its previous version');
    else this.log.info(outcome, 'reloaded command files and plugins');
    return failures;
  }

  address(): AddressInfo | null {
    return (this.server?.address() as AddressInfo | null) ?? null;
  }

  /**
   * Stops accepting, lets each client's command in flight finish and reply, runs
   * `closeConnection` for every client (SessionServer writes their sessions there),
   * then closes the sockets.
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    if (this.idleSweep) clearInterval(this.idleSweep);
    const stopped = this.server ? new Promise<void>((resolve) => this.server!.close(() => resolve())) : Promise.resolve();
    await Promise.all(
      [...this.connections].map(async (connection) => {
        connection.end();
        connection.markClosed();
        await connection.idle;
        await this.releaseConnection(connection);
        connection.flushNow();
        connection.socket.end();
        connection.socket.destroySoon();
      }),
    );
    await this.hooks.shutdown.promise();
    await stopped;
    await this.plugins.unloadAll();
    await this.afterClose();
  }

  /** Runs before the port opens; SessionServer opens its store here. */
  protected async beforeListen(): Promise<void> {}

  /** Runs once every client is released; SessionServer closes its store here. */
  protected async afterClose(): Promise<void> {}

  private accept(socket: Socket): void {
    if (this.closing || this.connections.size >= this.limits.maxConnections || Date.now() < this.acceptBackoffUntil) {
      this.counters.connectionsRefused++;
      socket.on('error', () => {});
      // Discard what it sends, so its FIN is seen and the descriptor freed at once.
      socket.resume();
      socket.setTimeout(REFUSED_LINGER_MS, () => socket.destroy());
      socket.end(`err ${replyText(this.closing ? 'E_SHUTTING_DOWN' : 'E_TOO_MANY_CONNECTIONS')}\r\n`);
      return;
    }
    const connection = this.createConnection(socket, this.nextConnectionId++);
    this.connections.add(connection);
    this.counters.connectionsTotal++;
    socket.on('error', (error: NodeJS.ErrnoException) => {
      // A client resetting its connection is routine, not a server error.
      if (error.code !== 'ECONNRESET' && error.code !== 'EPIPE') this.log.debug({ err: error, connection: connection.id }, 'socket error');
    });
    socket.once('close', () => void this.onSocketClosed(connection));
    if (this.hooks.connection.isUsed()) this.hooks.connection.call(connection);
  }

  /** Makes the per-client object; a subclass returns its own Connection subclass with typed state. */
  protected createConnection(socket: Socket, id: number): Connection {
    return new Connection(this, socket, id);
  }

  /**
   * Lowers maxConnections, with a warning, when the process may not open that many files:
   * accepting must never run into EMFILE, and the store needs descriptors too.
   */
  private fitConnectionsToFileLimit(): void {
    const openFiles = openFileLimit();
    if (openFiles === null) return;
    const fits = connectionsWithin(openFiles);
    if (fits >= this.limits.maxConnections) return;
    this.log.warn(
      { maxConnections: this.limits.maxConnections, openFileLimit: openFiles, effectiveMaxConnections: fits },
      `maxConnections ${this.limits.maxConnections} does not fit the open-file limit ${openFiles} (ulimit -n); serving at most ${fits} connections`,
    );
    this.limits.maxConnections = fits;
  }

  /**
   * Accept failed (EMFILE/ENFILE: out of file descriptors anyway) or another listener
   * error: the server keeps serving its clients and refuses newcomers for a moment.
   */
  private onServerError(error: NodeJS.ErrnoException): void {
    if (error.code === 'EMFILE' || error.code === 'ENFILE') {
      const now = Date.now();
      if (now >= this.acceptBackoffUntil) this.log.warn({ code: error.code, connections: this.connections.size }, 'out of file descriptors: refusing new connections for a moment');
      this.acceptBackoffUntil = now + ACCEPT_BACKOFF_MS;
      return;
    }
    this.reportError(error, null);
  }

  /**
   * The client half-closed and every line it sent has run: its replies are on their way.
   * Writes and releases what it held (SessionServer: its session), then closes.
   */
  async finishConnection(connection: Connection): Promise<void> {
    await this.releaseConnection(connection);
    connection.flushNow();
    connection.socket.end();
  }

  private async onSocketClosed(connection: Connection): Promise<void> {
    connection.markClosed();
    // Commands run to completion even when their client is gone: an acknowledged
    // write must not be cut in half. Then what the client held is released.
    await connection.idle;
    await this.releaseConnection(connection);
    this.connections.delete(connection);
    if (this.hooks.disconnect.isUsed()) this.hooks.disconnect.call(connection);
  }

  private releasing = new WeakMap<Connection, Promise<void>>();
  private readonly commandClock = new CommandClock();
  private idleSweep: NodeJS.Timeout | null = null;

  /**
   * One timer for all clients instead of socket.setTimeout, which Node re-arms on every
   * read and write: the hot path only stores a timestamp.
   */
  private startIdleSweep(): void {
    const limitMs = this.limits.idleTimeout * 1000;
    if (limitMs <= 0) return;
    const every = Math.max(50, Math.min(1000, limitMs / 4));
    this.idleSweep = setInterval(() => {
      const now = Date.now();
      for (const connection of this.connections) {
        if (now - connection.lastActive >= limitMs && connection.isIdle()) {
          connection.flushNow();
          connection.socket.end(IDLE_TIMEOUT);
          connection.socket.destroySoon();
        }
      }
    }, every);
    this.idleSweep.unref();
  }

  /** Runs `closeConnection` once per connection, whichever of shutdown and disconnect comes first. */
  private releaseConnection(connection: Connection): Promise<void> {
    let done = this.releasing.get(connection);
    if (!done) {
      done = this.closeConnection(connection).catch((error: unknown) => {
        // A refusal the client would have been told (storage down, session too large) is no bug: no stack.
        if (isCommandError(error)) this.log.warn({ connection: connection.id, code: error.code, reason: error.message }, 'could not release what a departed client held');
        else this.reportError(error, connection);
      });
      this.releasing.set(connection, done);
    }
    return done;
  }

  /** Releases what a departing connection holds. SessionServer writes and unlocks its session here. */
  protected async closeConnection(_connection: Connection): Promise<void> {}

  /** Routes one line and returns its reply: a string now, or a promise for async commands. */
  dispatch(connection: Connection, line: string): string | Promise<string> {
    this.counters.commands++;
    if (connection.linesReceived++ === 0 && isHttpRequestLine(line)) {
      connection.end();
      return HTTP_REFUSED;
    }
    const request = parseRequest(line);
    const entry = this.commands.get(request.word);
    if (entry === undefined) return this.unknownCommand(connection);
    connection.unknownStreak = 0;
    if (this.hooks.beforeCommand.isUsed() || this.hooks.afterCommand.isUsed()) {
      return this.dispatchObserved(connection, entry, request);
    }
    const refusal = this.guard(connection, entry);
    if (refusal !== undefined) return errReply(refusal);
    return this.run(connection, entry, request);
  }

  /**
   * The hot path: routes a complete line straight from the read buffer. The line is trimmed
   * and split on its bytes (see isTrimmable: the same parts as splitting its text), so the
   * whole line is never decoded and sliced again; the arguments are decoded once each, as
   * strings of their own that do not keep the line alive inside a stored value. Lines this
   * path does not judge (a connection's first, non-ASCII command words, beforeCommand taps)
   * take the text path, dispatch(). afterCommand taps (metrics, logging) keep this path.
   */
  dispatchBytes(connection: Connection, bytes: Buffer, start: number, end: number): string | Promise<string> {
    while (end > start && isTrimmable(bytes[end - 1]!)) end--;
    while (start < end && isTrimmable(bytes[start]!)) start++;
    let wordEnd = start;
    let upper = false;
    for (; wordEnd < end; wordEnd++) {
      const byte = bytes[wordEnd]!;
      if (byte === SPACE) break;
      // Beyond ASCII, lower-casing is Unicode's (the Kelvin sign K becomes k): the text path does it.
      if (byte >= 0x80) return this.dispatch(connection, bytes.toString('utf8', start, end));
      if (byte >= 0x41 && byte <= 0x5a) upper = true;
    }
    if (connection.linesReceived === 0 || this.hooks.beforeCommand.isUsed()) {
      // The HTTP check reads the first line's text; beforeCommand taps are handed a Request.
      return this.dispatch(connection, bytes.toString('utf8', start, end));
    }
    this.counters.commands++;
    connection.linesReceived++;
    const word = bytes.toString('latin1', start, wordEnd);
    const entry = this.commands.get(upper ? word.toLowerCase() : word);
    if (entry === undefined) return this.unknownCommand(connection);
    connection.unknownStreak = 0;
    const watched = this.hooks.afterCommand.isUsed();
    const started = watched ? this.commandClock.start() : 0;
    const refusal = this.guard(connection, entry);
    if (refusal !== undefined) return watched ? this.observed(connection, entry, started, errReply(refusal)) : errReply(refusal);
    let arg1 = '';
    let arg2 = '';
    if (wordEnd < end) {
      let arg1End = wordEnd + 1;
      while (arg1End < end && bytes[arg1End] !== SPACE) arg1End++;
      arg1 = bytes.toString('utf8', wordEnd + 1, arg1End);
      if (arg1End < end) arg2 = bytes.toString('utf8', arg1End + 1, end);
    }
    const reply = this.runWith(connection, entry, arg1, arg2);
    return watched ? this.observedReply(connection, entry, started, reply) : reply;
  }

  /**
   * What a command needs before it runs, checked once here so handlers only do their job:
   * a refusal text, or undefined. The core needs nothing; subclasses check their spec fields.
   */
  protected guard(_connection: Connection, _entry: CommandEntry): string | undefined {
    return undefined;
  }

  private run(connection: Connection, entry: CommandEntry, request: Request): string | Promise<string> {
    return this.runWith(connection, entry, request.arg1, request.arg2);
  }

  private runWith(connection: Connection, entry: CommandEntry, arg1: string, arg2: string): string | Promise<string> {
    let result;
    try {
      result = entry.run(connection, arg1, arg2);
    } catch (error) {
      return this.failureReply(connection, entry, error);
    }
    if (result === undefined || typeof result === 'string') return okReply(result);
    if (typeof (result as Promise<unknown>).then === 'function') {
      return (result as Promise<string | void>).then(okReply, (error: unknown) => this.failureReply(connection, entry, error));
    }
    return okReply(String(result));
  }

  /** The path when plugins watch commands: policy taps (auth) speak before the session guards. */
  private dispatchObserved(connection: Connection, entry: CommandEntry, request: Request): string | Promise<string> {
    const refusal = this.hooks.beforeCommand.call(connection, entry, request) ?? this.guard(connection, entry);
    const started = this.commandClock.start();
    if (refusal !== undefined) return this.observed(connection, entry, started, errReply(refusal));
    return this.observedReply(connection, entry, started, this.run(connection, entry, request));
  }

  private observedReply(connection: Connection, entry: CommandEntry, started: number, reply: string | Promise<string>): string | Promise<string> {
    if (typeof reply === 'string') return this.observed(connection, entry, started, reply);
    return reply.then((text) => this.observed(connection, entry, started, text));
  }

  private observed(connection: Connection, entry: CommandEntry, started: number, reply: string): string {
    if (this.hooks.afterCommand.isUsed()) {
      const ok = reply.startsWith('ok');
      this.hooks.afterCommand.call(connection, {
        command: entry.name,
        durationMs: this.commandClock.since(started),
        ok,
        ...(ok ? {} : { error: reply.slice(4, -2) }),
      });
    }
    return reply;
  }

  private failureReply(connection: Connection, entry: CommandEntry, error: unknown): string {
    if (isCommandError(error)) return errReply(error.message);
    this.counters.errors++;
    this.reportError(error, connection, entry.name);
    return errReply(entry.failure);
  }

  private unknownCommand(connection: Connection): string {
    this.counters.unknownCommands++;
    if (++connection.unknownStreak >= this.limits.maxUnknownCommands) {
      connection.end();
      return TOO_MANY_UNKNOWN;
    }
    return UNKNOWN_COMMAND;
  }

  lineTooLongReply(): string {
    return errReply(replyText('E_LINE_TOO_LONG', { limit: this.limits.maxLineLength }));
  }

  protected reportError(error: unknown, connection: Connection | null, commandName?: string): void {
    const err = error instanceof Error ? error : new Error(String(error));
    this.log.error({ err, connection: connection?.id, command: commandName }, 'unexpected error');
    if (this.hooks.error.isUsed()) this.hooks.error.call(err, connection);
  }

  // ---- Generic commands: any line server built on this core has them. ----

  @command({ usage: 'ping', summary: 'check the connection; replies pong', access: 'read' })
  cmd_ping(): string {
    return 'pong';
  }

  @command({ usage: 'quit', summary: 'reply ok, then close the connection', access: 'read' })
  cmd_quit(ctx: Connection): void {
    ctx.end();
  }

  @command({ usage: 'help [command]', summary: 'list the commands, or show one with its usage', access: 'read' })
  cmd_help(_ctx: Connection, name: string): string {
    if (name === '') return this.commands.list().map((entry) => entry.usage).join('; ');
    const entry = this.commands.get(name.toLowerCase());
    if (!entry) throw CommandError.of('E_UNKNOWN_COMMAND');
    return entry.summary ? `${entry.usage} - ${entry.summary}` : entry.usage;
  }

  @command({ usage: 'hello', summary: 'server name, version, protocol level and capabilities', access: 'read' })
  cmd_hello(): string {
    return `${packageInfo.name} ${packageInfo.version} protocol=1 capabilities=${this.capabilities().join(',')}`;
  }

  /** What `hello` advertises; subclasses add theirs. */
  protected capabilities(): string[] {
    return ['pipelining', 'help'];
  }
}
