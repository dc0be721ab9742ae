import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Logger } from 'pino';
import type { CommandEntry, CommandSpec } from './command.js';
import type { CommandDefinition } from './command-files.js';
import { ConfigError } from './errors.js';
import type { AnyHook } from './hooks.js';
import type { LineServer } from './line-server.js';
import { importFresh, importSpecifier } from './module-loader.js';

type TapFn<H, M extends string> = H extends { [K in M]: (options: any, fn: infer F) => any } ? F : never;
type TapOptions = { stage?: number; before?: string };

/**
 * What the host hands each plugin's `apply`: every tap, command and clean-up made through
 * it belongs to that plugin, and unloading or reloading the plugin removes exactly those.
 */
export interface PluginContext<Server extends LineServer = LineServer> {
  readonly server: Server;
  /** The plugin's name. */
  readonly name: string;
  /** The server's logger, tagged with the plugin's name. Never log values or secrets with it. */
  readonly log: Logger;
  tap<H extends AnyHook>(hook: H, fn: TapFn<H, 'tap'>, options?: TapOptions): void;
  tapAsync<H extends AnyHook>(hook: H, fn: TapFn<H, 'tapAsync'>, options?: TapOptions): void;
  tapPromise<H extends AnyHook>(hook: H, fn: TapFn<H, 'tapPromise'>, options?: TapOptions): void;
  /** Adds (or replaces, until unload) a command. */
  addCommand<Spec extends CommandSpec>(definition: CommandDefinition<Spec>): CommandEntry<Spec>;
  /** Runs when the plugin is unloaded or replaced by a new version, after its taps and commands are gone. */
  onDispose(fn: () => void | Promise<void>): void;
}

/** A plugin, tapable style: `apply` taps the server's hooks (through `ctx`) and may add commands. */
export interface Plugin<Options = any, Server extends LineServer = any> {
  name: string;
  /** Apply after these plugins (by name) when they are configured too. */
  after?: string[];
  /** `pre` plugins apply before the others, `post` after them (the file watcher must see every plugin). */
  enforce?: 'pre' | 'post';
  apply(server: Server, options: Options, ctx: PluginContext<Server>): void | Promise<void>;
  /** Runs when the plugin is unloaded or reloaded, after its taps and commands are removed. */
  dispose?(): void | Promise<void>;
}

/** A plugin object, a path or package name, or `[pathOrName, options]`. */
export type PluginSpec = Plugin | string | [string, unknown];

/** Typed identity for plugin modules: `export default definePlugin({ name, apply })`. */
export function definePlugin<Options = undefined, Server extends LineServer = any>(plugin: Plugin<Options, Server>): Plugin<Options, Server> {
  return plugin;
}

/** Plugins shipped in this package's plugins/ folder, usable by bare name. */
export const SHIPPED_PLUGINS = ['auth', 'logging', 'hot-reload', 'metrics'];
const SHIPPED_FOLDER = fileURLToPath(new URL('../../plugins/', import.meta.url));

interface LoadedPlugin {
  plugin: Plugin;
  options: unknown;
  /** The module file, when the plugin came from one (reloadable). */
  file?: string;
  /** Tap functions this plugin added, to any hook. */
  taps: Set<Function>;
  /** Commands the plugin set, with what they replaced. */
  commands: Array<{ entry: CommandEntry; previous?: CommandEntry }>;
  disposers: Array<() => void | Promise<void>>;
}

/**
 * Loads plugins in their declared order and can take one out again without a trace: what
 * its `apply` added through its context (and, for plugins that tap `server.hooks` directly,
 * what appeared during `apply`) is recorded and removed on unload or reload.
 */
export class PluginHost {
  private readonly loaded: LoadedPlugin[] = [];

  constructor(private readonly server: LineServer, private readonly cwd = process.cwd()) {}

  /** Loads the specs, orders them (`enforce`, `after`) and applies each. A broken plugin stops the start: auth must not fail open. */
  async loadAll(specs: readonly PluginSpec[]): Promise<void> {
    const resolved = [];
    for (const spec of specs) resolved.push(await this.resolveSpec(spec));
    for (const { plugin, options, file } of orderPlugins(resolved)) {
      const entry = freshEntry(plugin, options, file);
      try {
        await this.activate(entry);
      } catch (error) {
        await this.deactivate(entry).catch(() => {});
        throw new ConfigError(`plugin "${plugin.name}"${file ? ` (${file})` : ''} failed to apply: ${(error as Error).message}`);
      }
    }
  }

  /** Files of the loaded plugins, for the watcher. */
  files(): string[] {
    return this.loaded.flatMap((entry) => (entry.file ? [entry.file] : []));
  }

  names(): string[] {
    return this.loaded.map((entry) => entry.plugin.name);
  }

  /**
   * Loads a plugin file's new version; when it loads and validates, the old version's taps
   * and commands are removed and the new one applied in its place. Otherwise the old stays.
   */
  async reload(path: string): Promise<Error | undefined> {
    const file = resolve(path);
    const current = this.loaded.find((entry) => entry.file === file);
    if (!current) return undefined;
    let next: Plugin;
    try {
      next = validate((await importFresh(file)).default, file);
    } catch (error) {
      return this.reloadFailed(file, error, 'plugin not reloaded; the previous version stays');
    }
    const position = this.loaded.indexOf(current);
    await this.deactivate(current);
    const replacement = freshEntry(next, current.options, file);
    try {
      await this.activate(replacement, position);
    } catch (error) {
      // The new version threw in apply(): put the old one back rather than run without it.
      await this.deactivate(replacement);
      await this.activate(freshEntry(current.plugin, current.options, file), position);
      return this.reloadFailed(file, error, 'plugin apply failed; the previous version was restored');
    }
    this.server.log.info({ file, plugin: next.name }, 'plugin reloaded');
    this.server.hooks.reload.call({ kind: 'plugin', file, action: 'change' });
    return undefined;
  }

  /** Reloads every plugin that came from a file (SIGHUP); returns the failures. */
  async reloadAll(): Promise<Error[]> {
    const failures: Error[] = [];
    for (const file of this.files()) {
      const error = await this.reload(file);
      if (error) failures.push(error);
    }
    return failures;
  }

  /** Removes every plugin (server shutdown), last applied first. */
  async unloadAll(): Promise<void> {
    for (const entry of [...this.loaded].reverse()) await this.deactivate(entry);
    this.loaded.length = 0;
  }

  private reloadFailed(file: string, error: unknown, message: string): Error {
    const err = error instanceof Error ? error : new Error(String(error));
    this.server.log.error({ err, file }, message);
    this.server.hooks.reload.call({ kind: 'plugin', file, action: 'change', error: err });
    return err;
  }

  private contextFor(entry: LoadedPlugin): PluginContext {
    const server = this.server;
    const tapWith = (method: 'tap' | 'tapAsync' | 'tapPromise') => (hook: AnyHook, fn: Function, options: TapOptions = {}) => {
      entry.taps.add(fn);
      (hook as unknown as Record<string, (o: object, f: Function) => void>)[method]!({ name: entry.plugin.name, ...options }, fn);
    };
    return {
      server,
      name: entry.plugin.name,
      log: server.log.child({ plugin: entry.plugin.name }),
      tap: tapWith('tap') as PluginContext['tap'],
      tapAsync: tapWith('tapAsync') as PluginContext['tapAsync'],
      tapPromise: tapWith('tapPromise') as PluginContext['tapPromise'],
      addCommand: (definition) => {
        const previous = server.commands.get(definition.name.toLowerCase());
        const added = server.addCommand(definition, `plugin:${entry.plugin.name}`);
        entry.commands.push({ entry: added, previous });
        return added;
      },
      onDispose: (fn) => void entry.disposers.push(fn),
    };
  }

  private async activate(entry: LoadedPlugin, at = this.loaded.length): Promise<void> {
    // Plugins written against 0.1 tap `server.hooks.*` directly: what appears during apply is theirs.
    const hooks = () => Object.values(this.server.hooks) as unknown as AnyHook[];
    const tapsBefore = new Set(hooks().flatMap((hook) => hook.taps.map((tap) => tap.fn)));
    const commandsBefore = new Map(this.server.commands.list().map((command) => [command.name, command]));
    this.loaded.splice(at, 0, entry);
    try {
      await entry.plugin.apply(this.server, entry.options, this.contextFor(entry));
    } finally {
      for (const hook of hooks()) for (const tap of hook.taps) if (!tapsBefore.has(tap.fn)) entry.taps.add(tap.fn);
      const tracked = new Set(entry.commands.map((command) => command.entry));
      for (const command of this.server.commands.list()) {
        const previous = commandsBefore.get(command.name);
        if (previous !== command && !tracked.has(command)) entry.commands.push({ entry: command, previous });
      }
    }
  }

  private async deactivate(entry: LoadedPlugin): Promise<void> {
    this.server.removeTaps(entry.taps);
    entry.taps = new Set();
    for (const { entry: command, previous } of entry.commands.reverse()) {
      if (this.server.commands.get(command.name) !== command) continue;
      if (previous) this.server.commands.set(previous);
      else this.server.commands.delete(command.name);
    }
    entry.commands = [];
    const index = this.loaded.indexOf(entry);
    if (index !== -1) this.loaded.splice(index, 1);
    for (const dispose of entry.disposers.reverse()) await dispose();
    entry.disposers = [];
    await entry.plugin.dispose?.();
  }

  private async resolveSpec(spec: PluginSpec): Promise<{ plugin: Plugin; options: unknown; file?: string }> {
    if (typeof spec === 'object' && !Array.isArray(spec)) return { plugin: validate(spec, spec?.name ?? 'plugin object'), options: undefined };
    const [specifier, options] = Array.isArray(spec) ? spec : [spec, undefined];
    if (typeof specifier !== 'string') throw new ConfigError(`plugins: expected a path, package name or plugin object, got ${typeof specifier}`);
    const file = this.fileOf(specifier);
    try {
      const module = file ? await importFresh(file) : await importSpecifier(specifier, pathToFileURL(resolve(this.cwd, 'package.json')).href);
      return { plugin: validate(module.default, file ?? specifier), options, file };
    } catch (error) {
      if (error instanceof ConfigError) throw error;
      throw new ConfigError(`plugin ${file ?? specifier} could not be loaded: ${(error as Error).message}`);
    }
  }

  private fileOf(specifier: string): string | undefined {
    if (SHIPPED_PLUGINS.includes(specifier)) return resolve(SHIPPED_FOLDER, `${specifier}.ts`);
    if (specifier.startsWith('.') || isAbsolute(specifier)) return resolve(this.cwd, specifier);
    return undefined;
  }
}

function freshEntry(plugin: Plugin, options: unknown, file: string | undefined): LoadedPlugin {
  return { plugin, options, file, taps: new Set(), commands: [], disposers: [] };
}

/** `pre` first, `post` last, each plugin after those it names in `after`; otherwise as configured. */
export function orderPlugins<T extends { plugin: Plugin }>(items: readonly T[]): T[] {
  const rank = (item: T) => (item.plugin.enforce === 'pre' ? 0 : item.plugin.enforce === 'post' ? 2 : 1);
  const pending = [...items].sort((a, b) => rank(a) - rank(b));
  const present = new Set(items.map((item) => item.plugin.name));
  const placed = new Set<string>();
  const ordered: T[] = [];
  while (pending.length > 0) {
    const index = pending.findIndex((item) => (item.plugin.after ?? []).every((name) => !present.has(name) || placed.has(name)));
    if (index === -1) throw new ConfigError(`plugins: "after" forms a cycle among ${pending.map((item) => item.plugin.name).join(', ')}`);
    const [item] = pending.splice(index, 1);
    ordered.push(item!);
    placed.add(item!.plugin.name);
  }
  return ordered;
}

function validate(exported: unknown, source: string): Plugin {
  const plugin = exported as Partial<Plugin> | undefined;
  if (typeof plugin !== 'object' || plugin === null) throw new ConfigError(`${source}: default export must be a plugin { name, apply }`);
  if (typeof plugin.name !== 'string' || plugin.name === '') throw new ConfigError(`${source}: plugin needs a "name"`);
  if (typeof plugin.apply !== 'function') throw new ConfigError(`${source}: plugin "${plugin.name}" needs an "apply(server)" function`);
  if (plugin.dispose !== undefined && typeof plugin.dispose !== 'function') throw new ConfigError(`${source}: "dispose" must be a function`);
  if (plugin.after !== undefined && (!Array.isArray(plugin.after) || plugin.after.some((name) => typeof name !== 'string'))) {
    throw new ConfigError(`${source}: "after" must be a list of plugin names`);
  }
  if (plugin.enforce !== undefined && plugin.enforce !== 'pre' && plugin.enforce !== 'post') throw new ConfigError(`${source}: "enforce" must be 'pre' or 'post'`);
  return plugin as Plugin;
}
