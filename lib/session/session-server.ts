import { command } from '../core/command.js';
import { DEFAULTS, type SessionServerConfig } from './config.js';
import type { Connection } from '../core/connection.js';
import { CommandError } from '../core/errors.js';
import { LineServer } from '../core/line-server.js';
import { LockTable } from '../locks/lock-table.js';
import type { OpenSession, SessionMode } from './open-session.js';
import { restOfLine } from '../protocol/request.js';
import { parseSessionPayload, toJson, toPhpSerialized } from './session-data-codec.js';
import { isValidSessionId, newSessionId } from '../protocol/session-id.js';
import { Sessions } from './sessions.js';
import type { SessionStore } from '../storage/contract.js';
import { createStore } from '../storage/index.js';

const MODES: Record<string, SessionMode> = { '': 'rw', r: 'r', w: 'w', rw: 'rw' };
const WHOLE_NUMBER = /^\d{1,10}$/;

/**
 * The session server: the classic HTTP_SessionServer protocol and sessionserver's
 * additions, each a `cmd_<word>` method. Subclass it to add or override commands.
 */
export class SessionServer extends LineServer {
  readonly store: SessionStore;
  readonly sessions: Sessions;
  readonly maxLifetime: number;
  /** `ids` may list every session id (config `listSessionIds`); off by default: ids are credentials. */
  readonly listSessionIds: boolean;
  gcCollected = 0;
  private readonly gcInterval: number;
  private gcTimer: NodeJS.Timeout | null = null;

  constructor(config: SessionServerConfig = {}) {
    super(config);
    this.store = createStore(config);
    this.maxLifetime = config.maxLifetime ?? DEFAULTS.maxLifetime;
    this.listSessionIds = config.listSessionIds ?? false;
    this.gcInterval = config.gcInterval ?? DEFAULTS.gcInterval;
    const locks = this.store.locks ?? new LockTable();
    this.sessions = new Sessions(this.store, locks, config.lockTimeout ?? DEFAULTS.lockTimeout, this.hooks);
  }

  protected override async beforeListen(): Promise<void> {
    await this.store.open();
    if (this.gcInterval > 0 && !this.gcTimer) {
      this.gcTimer = setInterval(() => void this.sweep(), this.gcInterval * 1000);
      this.gcTimer.unref();
    }
  }

  protected override async closeConnection(connection: Connection): Promise<void> {
    // As PHP writes a session at the end of a request, a vanished writer's changes are kept.
    await this.sessions.close(connection);
  }

  protected override async afterClose(): Promise<void> {
    if (this.gcTimer) clearInterval(this.gcTimer);
    this.gcTimer = null;
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
      this.reportError(error, null, 'gc');
    }
  }

  protected override capabilities(): string[] {
    return [...super.capabilities(), 'get_all_json', 'put_all_json', 'gc', 'touch', 'stats', 'lock_timeout', ...this.storeCapabilities()];
  }

  // ---- The classic protocol (PROTOCOL.md part 1): reply texts are binding. ----

  @command({ usage: 'new', summary: 'create a session with a fresh id and open it rw', failure: 'Could not create session.' })
  async cmd_new(ctx: Connection): Promise<string> {
    const id = newSessionId();
    await this.sessions.open(ctx, id, 'rw');
    return id;
  }

  @command({ usage: 'open <sid> [r|w|rw]', summary: 'open a session (default rw; r needs an existing one)', failure: 'Could not open session.' })
  async cmd_open(ctx: Connection, id: string, modeName: string): Promise<void> {
    const mode = MODES[modeName.toLowerCase()];
    if (mode === undefined || !isValidSessionId(id)) throw new CommandError('Could not open session.');
    await this.sessions.open(ctx, id, mode);
  }

  @command({ usage: 'close', summary: 'write pending changes and release the session', session: 'read', failure: 'Could not close session' })
  async cmd_close(ctx: Connection): Promise<void> {
    await this.sessions.close(ctx);
  }

  @command({ usage: 'commit', summary: 'write pending changes and continue read-only', session: 'read', failure: 'Could not commit session.' })
  async cmd_commit(ctx: Connection): Promise<void> {
    await this.sessions.commit(ctx, ctx.session!);
  }

  @command({ usage: 'destroy', summary: 'delete the session and release it', session: 'write', failure: 'Could not destroy session.' })
  async cmd_destroy(ctx: Connection): Promise<void> {
    await this.sessions.destroy(ctx, ctx.session!);
  }

  @command({ usage: 'put <key> <value>', summary: 'store a value (the rest of the line)', session: 'write', failure: 'Could not store value' })
  cmd_put(ctx: Connection, key: string, value: string): void {
    ctx.session!.put(key, value);
  }

  @command({ usage: 'get <key>', summary: 'read a value', session: 'read', failure: 'Key does not exist' })
  cmd_get(ctx: Connection, key: string): string {
    const value = ctx.session!.get(key);
    if (value === undefined) throw new CommandError('Key does not exist');
    return value;
  }

  @command({ usage: 'exists <key>', summary: 'ok when the key exists', session: 'read', failure: 'Key does not exist' })
  cmd_exists(ctx: Connection, key: string): void {
    if (!ctx.session!.has(key)) throw new CommandError('Key does not exist');
  }

  @command({ usage: 'remove <key>', summary: 'delete a key', session: 'write', failure: 'Could not remove value' })
  cmd_remove(ctx: Connection, key: string): void {
    if (!ctx.session!.remove(key)) throw new CommandError('Key does not exist');
  }

  @command({ usage: 'keys', summary: 'all keys, joined by |', session: 'read', failure: 'Could not retrieve keys.' })
  cmd_keys(ctx: Connection): string {
    return ctx.session!.keys().join('|');
  }

  @command({ usage: 'regenerate_id', summary: 'move the session to a fresh id', session: 'write', failure: 'Could not regenerate session id.' })
  async cmd_regenerate_id(ctx: Connection): Promise<string> {
    const id = newSessionId();
    const expiry = await this.store.expiry?.(ctx.session!.id);
    await this.sessions.regenerate(ctx, ctx.session!, id);
    // The session keeps its own lifetime under its new id.
    if (expiry?.lifetime != null) await this.store.setLifetime?.(id, expiry.lifetime);
    return id;
  }

  @command({ usage: 'get_all [json]', summary: 'all values, PHP-serialized or as JSON', session: 'read', failure: 'Could not get session data.' })
  cmd_get_all(ctx: Connection, format: string): string {
    const session: OpenSession = ctx.session!;
    if (format === '') return toPhpSerialized(session.entries());
    if (format.toLowerCase() === 'json') return toJson(session.entries());
    throw new CommandError('get_all takes no argument or json');
  }

  @command({ usage: 'put_all <a:…|{json}>', summary: 'replace all values', session: 'write', failure: 'Could not store values.' })
  cmd_put_all(ctx: Connection, first: string, rest: string): void {
    ctx.session!.replaceAll(parseSessionPayload(restOfLine(first, rest)));
  }

  // ---- sessionserver's additions (PROTOCOL.md part 2). ----

  @command({ usage: 'gc [seconds]', summary: 'delete sessions idle that long (default: max lifetime)', failure: 'Could not collect sessions.' })
  async cmd_gc(_ctx: Connection, seconds: string): Promise<string> {
    if (seconds !== '' && !WHOLE_NUMBER.test(seconds)) throw new CommandError('gc takes a whole number of seconds');
    const removed = await this.collectGarbage(seconds === '' ? this.maxLifetime : Number(seconds));
    return String(removed);
  }

  @command({ usage: 'touch', summary: 'mark the open session as accessed now', session: 'read', failure: 'Could not touch session.' })
  async cmd_touch(ctx: Connection): Promise<void> {
    await this.store.touch(ctx.session!.id);
  }

  /** `ttl` and `ids` need optional store methods; `hello` advertises only what works here. */
  private storeCapabilities(): string[] {
    const optional: string[] = [];
    if (this.store.setLifetime && this.store.expiry) optional.push('ttl');
    if (this.store.ids && this.listSessionIds) optional.push('ids');
    return optional;
  }

  @command({
    usage: 'ttl [seconds|default]',
    summary: 'give the open session its own idle lifetime (default: back to max lifetime), or show the seconds it has left',
    session: 'read',
    failure: 'Could not set ttl.',
  })
  async cmd_ttl(ctx: Connection, seconds: string): Promise<string | void> {
    const { store } = this;
    if (!store.setLifetime || !store.expiry) throw new CommandError(`ttl is not supported by the ${store.name} storage`);
    const session = ctx.session!;
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
    if (!session.writable) throw new CommandError('Could not set ttl.');
    await store.save(session.id, session.handOver());
    if (!(await store.setLifetime(session.id, lifetime))) throw new CommandError('Could not set ttl.');
  }

  @command({
    usage: 'ids',
    summary: 'every session id, joined by | (only when the server enables listSessionIds)',
    failure: 'Could not list session ids.',
  })
  async cmd_ids(): Promise<string> {
    if (!this.listSessionIds) throw new CommandError('ids is disabled on this server (enable listSessionIds)');
    if (!this.store.ids) throw new CommandError(`ids is not supported by the ${this.store.name} storage`);
    return (await this.store.ids()).join('|');
  }

  @command({ usage: 'stats', summary: 'counters as name=value pairs', failure: 'Could not read stats.' })
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

  @command({ usage: 'hello', summary: 'server name, version, protocol level, storage and capabilities' })
  override cmd_hello(): string {
    return `${super.cmd_hello()} storage=${this.store.name}`;
  }
}
