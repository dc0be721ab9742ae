import type { Connection } from './connection.js';

/** A handler's outcome: a string becomes `ok <payload>`, nothing becomes `ok`. */
export type CommandResult = string | void | undefined;

export type CommandHandler<C extends Connection = any> = (ctx: C, arg1: string, arg2: string) => CommandResult | Promise<CommandResult>;

/** Whether a command only reads state or changes it (data, lifetimes, anything). */
export type CommandAccess = 'read' | 'write';

export interface CommandSpec {
  /** One-line usage for `help`, e.g. `get <key>`. Defaults to the command name. */
  usage?: string;
  /** What the command does, a few words for `help <command>`. */
  summary?: string;
  /** The reply text when the command fails for a reason the client did not name (I/O, a bug). */
  failure?: string;
  /**
   * `read` when the command changes nothing, `write` otherwise; a function decides per
   * request (`open <sid> r` reads, `open <sid> rw` writes). Undeclared counts as `write`:
   * read-only principals (auth plugin) may run only what is declared `read`.
   */
  access?: CommandAccess | ((arg1: string, arg2: string) => CommandAccess);
}

export interface CommandEntry<Spec extends CommandSpec = CommandSpec> {
  readonly name: string;
  readonly usage: string;
  readonly summary: string;
  readonly failure: string;
  /** Everything declared with the command, including fields a subclass defines (SessionServer: `session`). */
  readonly spec: Spec;
  readonly run: CommandHandler;
  /** Where it came from, for collision reports: `SessionServer`, a subclass name, a file path. */
  readonly source: string;
}

/** What `entry` does with these arguments; undeclared means `write`. */
export function accessOf(entry: CommandEntry, arg1: string, arg2: string): CommandAccess {
  const access = entry.spec.access;
  if (access === undefined) return 'write';
  return typeof access === 'function' ? access(arg1, arg2) : access;
}

const COMMAND_SPEC = Symbol.for('sessionserver.commandSpec');
export const COMMAND_METHOD_PREFIX = 'cmd_';

/**
 * Declares a `cmd_<word>` method's needs next to it. Works as a standard (TC39) decorator,
 * as a legacy TypeScript decorator, and called by hand in plain JavaScript:
 * `command({ access: 'read' })(MyServer.prototype.cmd_peek)`. A subclass with spec fields
 * of its own types them: `command<SessionCommandSpec>({ session: 'read' })`.
 */
export function command<Spec extends CommandSpec = CommandSpec>(spec: Spec) {
  return function decorate(value: any, _context?: unknown, descriptor?: PropertyDescriptor): any {
    const method = descriptor ? descriptor.value : value;
    if (typeof method !== 'function') throw new TypeError('@command() decorates methods');
    method[COMMAND_SPEC] = spec;
    return descriptor ?? value;
  };
}

export function commandSpecOf(method: unknown): CommandSpec {
  return (method as { [COMMAND_SPEC]?: CommandSpec } | undefined)?.[COMMAND_SPEC] ?? {};
}

/** An override without its own @command() keeps the spec of the method it overrides. */
function inheritedSpec(proto: object, key: string): CommandSpec {
  for (let p: any = proto; p && p !== Object.prototype; p = Object.getPrototypeOf(p)) {
    const method = Object.getOwnPropertyDescriptor(p, key)?.value;
    if ((method as { [COMMAND_SPEC]?: CommandSpec } | undefined)?.[COMMAND_SPEC]) return commandSpecOf(method);
  }
  return {};
}

export function makeEntry<Spec extends CommandSpec>(name: string, run: CommandHandler, spec: Spec, source: string): CommandEntry<Spec> {
  return {
    name,
    run,
    source,
    spec,
    usage: spec.usage ?? name,
    summary: spec.summary ?? '',
    failure: spec.failure ?? `Could not run ${name}`,
  };
}

/** The one table that routing, `help` and the guards all read. */
export class CommandRegistry {
  private readonly entries = new Map<string, CommandEntry>();

  /**
   * Collects every `cmd_<word>` method of an object's class chain; the most derived
   * definition wins, which is how a subclass overrides a built-in.
   */
  static fromPrototypeChain(instance: object): CommandRegistry {
    const registry = new CommandRegistry();
    for (let proto = Object.getPrototypeOf(instance); proto && proto !== Object.prototype; proto = Object.getPrototypeOf(proto)) {
      for (const key of Object.getOwnPropertyNames(proto)) {
        if (!key.startsWith(COMMAND_METHOD_PREFIX)) continue;
        const name = key.slice(COMMAND_METHOD_PREFIX.length).toLowerCase();
        if (registry.entries.has(name)) continue;
        const method = (proto as Record<string, unknown>)[key];
        if (typeof method !== 'function') continue;
        const run = method.bind(instance) as CommandHandler;
        registry.entries.set(name, makeEntry(name, run, inheritedSpec(proto, key), proto.constructor.name));
      }
    }
    return registry;
  }

  get(name: string): CommandEntry | undefined {
    return this.entries.get(name);
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  set(entry: CommandEntry): void {
    this.entries.set(entry.name, entry);
  }

  delete(name: string): boolean {
    return this.entries.delete(name);
  }

  /** Entries sorted by name, for `help`. */
  list(): CommandEntry[] {
    return [...this.entries.values()].sort((a, b) => a.name.localeCompare(b.name));
  }
}
