import type { Socket } from 'node:net';
import { command as coreCommand, type CommandEntry, type CommandSpec } from '../core/command.js';
import { defineCommand, type CommandDefinition } from '../core/command-files.js';
import { CommandError } from '../core/errors.js';
import type { HookFactories } from '../core/hooks.js';
import { LineServer } from '../core/line-server.js';
import { LockTable } from '../locks/lock-table.js';
import { DEFAULTS } from '../config/defaults.js';
import type { SessionServerConfig } from '../config/config.js';
import { SESSION_HOOKS, type SessionServerHooks } from './hooks.js';
import type { OpenSession, SessionMode } from './open-session.js';
import { SessionConnection } from './session-connection.js';
import { restOfLine } from '../protocol/request.js';
import { parseSessionPayload, toJson, toPhpSerialized } from './session-data-codec.js';
import { isValidSessionId, newSessionId } from '../protocol/session-id.js';
import { Sessions } from './sessions.js';
import { reportingStoreFailures } from './store-failures.js';
import type { SessionStore } from '../storage/contract.js';
import { isStorageUnavailable } from '../storage/guard.js';
import { createEmbeddedStore, loadStore } from '../storage/load.js';
import { replyText } from '../protocol/replies.js';

const NO_SESSION = replyText('E_NO_SESSION');

const MODES: Record<string, SessionMode> = { '': 'rw', r: 'r', w: 'w', rw: 'rw' };
const WHOLE_NUMBER = /^\d{1,10}$/;

/** What a command needs before it may run; the guard checks it, handlers never do. */
export type SessionNeed = 'none' | 'read' | 'write';
const SESSION_NEEDS = new Set<unknown>(['none', 'read', 'write']);

/** A session server's command spec: the core's fields plus the session it needs. */
export interface SessionCommandSpec extends CommandSpec {
  /** `read`: needs an open session; `write`: needs one opened `w`/`rw`. Default `none`. */
  session?: SessionNeed;
}

/** `@command` for session server methods, with the `session` field typed. */
export const command = (spec: SessionCommandSpec) => coreCommand<SessionCommandSpec>(spec);

/** A session command's handler: its context holds the open session (`ctx.openSession`). */
export type SessionCommandDefinition = Omit<CommandDefinition<SessionCommandSpec>, 'run'> & {
  run(ctx: SessionConnection, arg1: string, arg2: string): string | void | undefined | Promise<string | void | undefined>;
};

/** Typed identity for a session server's command files: `export default defineSessionCommand({ name, session: 'write', run })`. */
export function defineSessionCommand(definition: SessionCommandDefinition): CommandDefinition<SessionCommandSpec> {
  return defineCommand<SessionCommandSpec>(definition as CommandDefinition<SessionCommandSpec>);
}

/** `open <sid> r` reads; every other mode may create or change the session. */
const OPEN_ACCESS = (_id: string, mode: string) => (mode.toLowerCase() === 'r' ? 'read' : 'write') as 'read' | 'write';
/** `ttl` alone reads the seconds left; `ttl <seconds|default>` changes the lifetime. */
const TTL_ACCESS = (seconds: string) => (seconds === '' ? 'read' : 'write') as 'read' | 'write';

const sessionNeedOf = (entry: CommandEntry): SessionNeed => (entry.spec as SessionCommandSpec).session ?? 'none';

/** `metrics: { port }` applies the shipped metrics plugin: the line core knows nothing of metrics. */
function withMetricsPlugin(config: SessionServerConfig): SessionServerConfig {
  const { metrics } = config;
  if (metrics?.port === undefined) return config;
  const plugins = config.plugins ?? [];
  if (plugins.some((spec) => spec === 'metrics' || (Array.isArray(spec) && spec[0] === 'metrics'))) return config;
  const options = { port: metrics.port, host: metrics.host ?? DEFAULTS.metricsHost, storageTimeout: config.storageTimeout ?? DEFAULTS.storageTimeout };
  return { ...config, plugins: [...plugins, ['metrics', options]] };
}

/**
 * The session server: the classic HTTP_SessionServer protocol and sessionserver's
 * additions, each a `cmd_<word>` method. Subclass it to add or override commands.
 */
export class SessionServer extends LineServer {
  declare readonly hooks: SessionServerHooks;
  readonly maxLifetime: number;
  /** `ids` may list every session id (config `listSessionIds`); off by default: ids are credentials. */
  readonly listSessionIds: boolean;
  gcCollected = 0;
  private readonly gcInterval: number;
  private gcTimer: NodeJS.Timeout | null = null;

  constructor(config: SessionServerConfig = {}) {
    super(withMetricsPlugin(config));
    this.config = config;
    this.maxLifetime = config.maxLifetime ?? DEFAULTS.maxLifetime;
    this.listSessionIds = config.listSessionIds ?? false;
    this.gcInterval = config.gcInterval ?? DEFAULTS.gcInterval;
    // The embedded stores exist at once; a Redis or PostgreSQL driver is imported at listen().
    const embedded = createEmbeddedStore(config, this.log);
    if (embedded) this.attach(embedded);
  }

  private readonly config: SessionServerConfig;
  private attached: { store: SessionStore; sessions: Sessions } | null = null;

  /** The session store (for Redis and PostgreSQL: once `listen()` has loaded the driver). */
  get store(): SessionStore {
    return this.storage().store;
  }

  /** Opens, writes and releases sessions for connections; holds the writer locks. */
  get sessions(): Sessions {
    return this.storage().sessions;
  }

  private storage(): { store: SessionStore; sessions: Sessions } {
    if (this.attached) return this.attached;
    throw new Error(`the ${String(this.config.storage)} store is loaded by listen(): use server.store once listen() has resolved`);
  }

  private attach(created: SessionStore): void {
    // Every failed storage operation fires `storageError`, whoever called the store.
    const store = reportingStoreFailures(created, (error) => {
      if (this.hooks.storageError.isUsed()) this.hooks.storageError.call(error);
    });
    const locks = store.locks ?? new LockTable();
    const sessions = new Sessions(store, locks, this.config.lockTimeout ?? DEFAULTS.lockTimeout, this.hooks, {
      maxBytes: this.config.maxSessionSize ?? DEFAULTS.maxSessionSize,
      storeBytesFree: store.bytesFree ? () => store.bytesFree!() : undefined,
    });
    this.attached = { store, sessions };
  }

  protected override defineHooks(): HookFactories {
    return SESSION_HOOKS;
  }

  protected override createConnection(socket: Socket, id: number): SessionConnection {
    return new SessionConnection(this, socket, id);
  }

  /** A session command runs only with a session open (and writable, for `write`). */
  protected override guard(connection: SessionConnection, entry: CommandEntry): string | undefined {
    const need = sessionNeedOf(entry);
    if (need === 'none') return undefined;
    const session = connection.session;
    if (session === null) return NO_SESSION;
    if (need === 'write' && !session.writable) return entry.failure;
    return undefined;
  }

  override validateCommandSpec(spec: Record<string, unknown>): void {
    if (spec.session !== undefined && !SESSION_NEEDS.has(spec.session)) throw new Error(`"session" must be 'none', 'read' or 'write'`);
  }

  protected override async beforeListen(): Promise<void> {
    if (!this.attached) this.attach(await loadStore(this.config, this.log));
    await this.store.open();
    if (this.gcInterval > 0 && !this.gcTimer) {
      this.gcTimer = setInterval(() => void this.sweep(), this.gcInterval * 1000);
      this.gcTimer.unref();
    }
  }

  protected override async closeConnection(connection: SessionConnection): Promise<void> {
    // As PHP writes a session at the end of a request, a vanished writer's changes are kept.
    await this.sessions.close(connection);
  }

  protected override async afterClose(): Promise<void> {
    if (this.gcTimer) clearInterval(this.gcTimer);
    this.gcTimer = null;
    if (!this.attached) return; // listen() failed before the driver was loaded
    await this.sessions.locks.close?.();
    await this.store.close();
  }

  /** Deletes sessions idle for `maxIdleSeconds`, never one a client holds open. */
  async collectGarbage(maxIdleSeconds = this.maxLifetime): Promise<number> {
    const removed = await this.store.collect(maxIdleSeconds * 1000, this.sessions.isHeld);
    this.gcCollected += removed;
    return removed;
  }

  private async sweep(): Promise<void> {
    try {
      const removed = await this.collectGarbage();
      if (removed > 0) this.log.debug({ removed }, 'expired sessions collected');
    } catch (error) {
      // An outage is logged once by the store's guard; only other failures are worth a stack.
      if (!isStorageUnavailable(error)) this.reportError(error, null, 'gc');
    }
  }

  protected override capabilities(): string[] {
    return [...super.capabilities(), 'get_all_json', 'put_all_json', 'gc', 'touch', 'stats', 'lock_timeout', ...this.storeCapabilities()];
  }

  // ---- The classic protocol (PROTOCOL.md part 1): reply texts are binding. ----

  @command({ usage: 'new', summary: 'create a session with a fresh id and open it rw', failure: 'Could not create session.', access: 'write' })
  async cmd_new(ctx: SessionConnection): Promise<string> {
    const id = newSessionId();
    await this.sessions.open(ctx, id, 'rw');
    return id;
  }

  @command({ usage: 'open <sid> [r|w|rw]', summary: 'open a session (default rw; r needs an existing one)', failure: 'Could not open session.', access: OPEN_ACCESS })
  async cmd_open(ctx: SessionConnection, id: string, modeName: string): Promise<void> {
    const mode = MODES[modeName.toLowerCase()];
    if (mode === undefined || !isValidSessionId(id)) throw CommandError.of('E_OPEN_FAILED');
    await this.sessions.open(ctx, id, mode);
  }

  @command({ usage: 'close', summary: 'write pending changes and release the session', session: 'read', failure: 'Could not close session', access: 'read' })
  async cmd_close(ctx: SessionConnection): Promise<void> {
    await this.sessions.close(ctx);
  }

  @command({ usage: 'commit', summary: 'write pending changes and continue read-only', session: 'read', failure: 'Could not commit session.', access: 'read' })
  async cmd_commit(ctx: SessionConnection): Promise<void> {
    await this.sessions.commit(ctx, ctx.openSession);
  }

  @command({ usage: 'destroy', summary: 'delete the session and release it', session: 'write', failure: 'Could not destroy session.', access: 'write' })
  async cmd_destroy(ctx: SessionConnection): Promise<void> {
    await this.sessions.destroy(ctx, ctx.openSession);
  }

  @command({ usage: 'put <key> <value>', summary: 'store a value (the rest of the line)', session: 'write', failure: 'Could not store value', access: 'write' })
  cmd_put(ctx: SessionConnection, key: string, value: string): void {
    ctx.openSession.put(key, value);
  }

  @command({ usage: 'get <key>', summary: 'read a value', session: 'read', failure: 'Key does not exist', access: 'read' })
  cmd_get(ctx: SessionConnection, key: string): string {
    const value = ctx.openSession.get(key);
    if (value === undefined) throw CommandError.of('E_NO_KEY');
    return value;
  }

  @command({ usage: 'exists <key>', summary: 'ok when the key exists', session: 'read', failure: 'Key does not exist', access: 'read' })
  cmd_exists(ctx: SessionConnection, key: string): void {
    if (!ctx.openSession.has(key)) throw CommandError.of('E_NO_KEY');
  }

  @command({ usage: 'remove <key>', summary: 'delete a key', session: 'write', failure: 'Could not remove value', access: 'write' })
  cmd_remove(ctx: SessionConnection, key: string): void {
    if (!ctx.openSession.remove(key)) throw CommandError.of('E_NO_KEY');
  }

  @command({ usage: 'keys', summary: 'all keys, joined by |', session: 'read', failure: 'Could not retrieve keys.', access: 'read' })
  cmd_keys(ctx: SessionConnection): string {
    return ctx.openSession.keys().join('|');
  }

  @command({ usage: 'regenerate_id', summary: 'move the session to a fresh id', session: 'write', failure: 'Could not regenerate session id.', access: 'write' })
  async cmd_regenerate_id(ctx: SessionConnection): Promise<string> {
    const id = newSessionId();
    const expiry = await this.store.expiry?.(ctx.openSession.id);
    await this.sessions.regenerate(ctx, ctx.openSession, id);
    // The session keeps its own lifetime under its new id.
    if (expiry?.lifetime != null) await this.store.setLifetime?.(id, expiry.lifetime);
    return id;
  }

  @command({ usage: 'get_all [json]', summary: 'all values, PHP-serialized or as JSON', session: 'read', failure: 'Could not get session data.', access: 'read' })
  cmd_get_all(ctx: SessionConnection, format: string): string {
    const session: OpenSession = ctx.openSession;
    if (format === '') return toPhpSerialized(session.entries());
    if (format.toLowerCase() === 'json') return toJson(session.entries());
    throw new CommandError('get_all takes no argument or json');
  }

  @command({ usage: 'put_all <a:…|{json}>', summary: 'replace all values', session: 'write', failure: 'Could not store values.', access: 'write' })
  cmd_put_all(ctx: SessionConnection, first: string, rest: string): void {
    ctx.openSession.replaceAll(parseSessionPayload(restOfLine(first, rest)));
  }

  // ---- sessionserver's additions (PROTOCOL.md part 2). ----

  @command({ usage: 'gc [seconds]', summary: 'delete sessions idle that long (default: max lifetime)', failure: 'Could not collect sessions.', access: 'write' })
  async cmd_gc(_ctx: SessionConnection, seconds: string): Promise<string> {
    if (seconds !== '' && !WHOLE_NUMBER.test(seconds)) throw new CommandError('gc takes a whole number of seconds');
    const removed = await this.collectGarbage(seconds === '' ? this.maxLifetime : Number(seconds));
    return String(removed);
  }

  @command({ usage: 'touch', summary: 'mark the open session as accessed now', session: 'read', failure: 'Could not touch session.', access: 'write' })
  async cmd_touch(ctx: SessionConnection): Promise<void> {
    await this.store.touch(ctx.openSession.id);
  }

  /** `ttl` and `ids` need optional store methods; `hello` advertises only what works here. */
  private storeCapabilities(): string[] {
    const optional: string[] = [];
    if (this.store.setLifetime && this.store.expiry) optional.push('ttl');
    if (this.store.ids && this.listSessionIds) optional.push('ids');
    return optional;
  }

  @command({
    access: TTL_ACCESS,
    usage: 'ttl [seconds|default]',
    summary: 'give the open session its own idle lifetime (default: back to max lifetime), or show the seconds it has left',
    session: 'read',
    failure: 'Could not set ttl.',
  })
  async cmd_ttl(ctx: SessionConnection, seconds: string): Promise<string | void> {
    const { store } = this;
    if (!store.setLifetime || !store.expiry) throw new CommandError(`ttl is not supported by the ${store.name} storage`);
    const session = ctx.openSession;
    if (seconds === '') {
      const expiry = await store.expiry(session.id);
      const lifetime = expiry?.lifetime ?? this.maxLifetime;
      // A session not stored yet (fresh from `new`) has its whole lifetime ahead.
      const idleSeconds = expiry ? (Date.now() - expiry.lastAccess) / 1000 : 0;
      return String(Math.max(0, Math.ceil(lifetime - idleSeconds)));
    }
    let lifetime: number | null;
    if (seconds.toLowerCase() === 'default') lifetime = null;
    else if (WHOLE_NUMBER.test(seconds) && Number(seconds) > 0) lifetime = Number(seconds);
    else throw new CommandError('ttl takes a whole number of seconds (at least 1) or default');
    if (await store.setLifetime(session.id, lifetime)) return;
    // Not stored yet (fresh from `new` or `open … rw`): the lifetime needs a record to live in,
    // so write the session now, pending values included, as `commit` would, and keep it open.
    if (!session.writable) throw new CommandError('Could not set ttl.', 'E_COMMAND_FAILED');
    await store.save(session.id, session.handOver());
    if (!(await store.setLifetime(session.id, lifetime))) throw new CommandError('Could not set ttl.', 'E_COMMAND_FAILED');
  }

  @command({
    access: 'read',
    usage: 'ids',
    summary: 'every session id, joined by | (only when the server enables listSessionIds)',
    failure: 'Could not list session ids.',
  })
  async cmd_ids(): Promise<string> {
    if (!this.listSessionIds) throw new CommandError('ids is disabled on this server (enable listSessionIds)');
    if (!this.store.ids) throw new CommandError(`ids is not supported by the ${this.store.name} storage`);
    return (await this.store.ids()).join('|');
  }

  @command({ usage: 'stats', summary: 'counters as name=value pairs', failure: 'Could not read stats.', access: 'read' })
  async cmd_stats(): Promise<string> {
    const { counters, sessions } = this;
    const fields: Record<string, number | string> = {
      uptime: Math.floor((Date.now() - this.startedAt) / 1000),
      storage: this.store.name,
      connections: this.connections.size,
      connections_total: counters.connectionsTotal,
      connections_refused: counters.connectionsRefused,
      commands: counters.commands,
      unknown_commands: counters.unknownCommands,
      errors: counters.errors,
      sessions: await this.store.count(),
      sessions_held: sessions.heldCount,
      sessions_opened: sessions.opened,
      lock_waits: sessions.locks.waits,
      lock_timeouts: sessions.locks.timeouts,
      gc_collected: this.gcCollected,
    };
    return Object.entries(fields).map(([name, value]) => `${name}=${value}`).join(' ');
  }

  @command({ usage: 'hello', summary: 'server name, version, protocol level, storage and capabilities', access: 'read' })
  override cmd_hello(): string {
    return `${super.cmd_hello()} storage=${this.store.name}`;
  }
}
