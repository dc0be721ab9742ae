import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { tsImport } from 'tsx/esm/api';
import type { CommandEntry } from './command.js';
import { importFresh, unwrapInterop } from '../cli/config-file.js';
import { ConfigError } from './errors.js';
import type { LineServer } from './line-server.js';

/** A plugin, tapable style: `apply` taps `server.hooks.*` (and may add commands). */
export interface Plugin<Options = any, Server extends LineServer = any> {
  name: string;
  apply(server: Server, options: Options): void | Promise<void>;
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
export const SHIPPED_PLUGINS = ['auth', 'logging', 'hot-reload'];
const SHIPPED_FOLDER = fileURLToPath(new URL('../../plugins/', import.meta.url));

interface TapRecord {
  hook: { taps: unknown[] };
  tap: unknown;
}

interface LoadedPlugin {
  plugin: Plugin;
  options: unknown;
  /** The module file, when the plugin came from one (reloadable). */
  file?: string;
  taps: TapRecord[];
  /** Commands the plugin set, with what they replaced. */
  commands: Array<{ entry: CommandEntry; previous?: CommandEntry }>;
}

/**
 * Loads plugins and can take one out again without a trace: the taps and commands its
 * `apply` added are recorded, so a reload removes them before the new version applies.
 */
export class PluginHost {
  private readonly loaded: LoadedPlugin[] = [];

  constructor(private readonly server: LineServer, private readonly cwd = process.cwd()) {}

  /** Loads each spec in order. At start a broken plugin stops the server: failing open is not an option for auth. */
  async loadAll(specs: readonly PluginSpec[]): Promise<void> {
    for (const spec of specs) {
      const { plugin, options, file } = await this.resolveSpec(spec);
      await this.activate({ plugin, options, file, taps: [], commands: [] });
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
      const err = error instanceof Error ? error : new Error(String(error));
      this.server.log.error({ err, file }, 'plugin not reloaded; the previous version stays');
      this.server.hooks.reload.call({ kind: 'plugin', file, action: 'change', error: err });
      return err;
    }
    const position = this.loaded.indexOf(current);
    await this.deactivate(current);
    const replacement: LoadedPlugin = { plugin: next, options: current.options, file, taps: [], commands: [] };
    try {
      await this.activate(replacement, position);
    } catch (error) {
      // The new version threw in apply(): put the old one back rather than run without it.
      const err = error instanceof Error ? error : new Error(String(error));
      await this.deactivate(replacement);
      await this.activate({ ...current, taps: [], commands: [] }, position);
      this.server.log.error({ err, file }, 'plugin apply failed; the previous version was restored');
      this.server.hooks.reload.call({ kind: 'plugin', file, action: 'change', error: err });
      return err;
    }
    this.server.log.info({ file, plugin: next.name }, 'plugin reloaded');
    this.server.hooks.reload.call({ kind: 'plugin', file, action: 'change' });
    return undefined;
  }

  /** Removes every plugin (server shutdown). */
  async unloadAll(): Promise<void> {
    for (const entry of [...this.loaded].reverse()) await this.deactivate(entry);
    this.loaded.length = 0;
  }

  private async activate(entry: LoadedPlugin, at = this.loaded.length): Promise<void> {
    const hooks = Object.values(this.server.hooks) as unknown as Array<{ taps: unknown[] }>;
    const tapsBefore = hooks.map((hook) => new Set(hook.taps));
    const commandsBefore = new Map(this.server.commands.list().map((command) => [command.name, command]));
    this.loaded.splice(at, 0, entry);
    try {
      await entry.plugin.apply(this.server, entry.options);
    } finally {
      hooks.forEach((hook, i) => {
        for (const tap of hook.taps) if (!tapsBefore[i]!.has(tap)) entry.taps.push({ hook, tap });
      });
      for (const command of this.server.commands.list()) {
        const previous = commandsBefore.get(command.name);
        if (previous !== command) entry.commands.push({ entry: command, previous });
      }
    }
  }

  private async deactivate(entry: LoadedPlugin): Promise<void> {
    for (const { hook, tap } of entry.taps) {
      hook.taps = hook.taps.filter((candidate) => candidate !== tap);
      // tapable compiles a hook's call function from its taps; make it recompile.
      (hook as unknown as { _resetCompilation(): void })._resetCompilation();
    }
    entry.taps = [];
    for (const { entry: command, previous } of entry.commands) {
      if (this.server.commands.get(command.name) !== command) continue;
      if (previous) this.server.commands.set(previous);
      else this.server.commands.delete(command.name);
    }
    entry.commands = [];
    const index = this.loaded.indexOf(entry);
    if (index !== -1) this.loaded.splice(index, 1);
    await entry.plugin.dispose?.();
  }

  private async resolveSpec(spec: PluginSpec): Promise<{ plugin: Plugin; options: unknown; file?: string }> {
    if (typeof spec === 'object' && !Array.isArray(spec)) return { plugin: validate(spec, spec?.name ?? 'plugin object'), options: undefined };
    const [specifier, options] = Array.isArray(spec) ? spec : [spec, undefined];
    if (typeof specifier !== 'string') throw new ConfigError(`plugins: expected a path, package name or plugin object, got ${typeof specifier}`);
    const file = this.fileOf(specifier);
    try {
      const module = file ? await importFresh(file) : unwrapInterop(await tsImport(specifier, pathToFileURL(resolve(this.cwd, 'package.json')).href));
      return { plugin: validate((module as { default?: unknown }).default, file ?? specifier), options, file };
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

function validate(exported: unknown, source: string): Plugin {
  const plugin = exported as Partial<Plugin> | undefined;
  if (typeof plugin !== 'object' || plugin === null) throw new ConfigError(`${source}: default export must be a plugin { name, apply }`);
  if (typeof plugin.name !== 'string' || plugin.name === '') throw new ConfigError(`${source}: plugin needs a "name"`);
  if (typeof plugin.apply !== 'function') throw new ConfigError(`${source}: plugin "${plugin.name}" needs an "apply(server)" function`);
  if (plugin.dispose !== undefined && typeof plugin.dispose !== 'function') throw new ConfigError(`${source}: "dispose" must be a function`);
  return plugin as Plugin;
}
