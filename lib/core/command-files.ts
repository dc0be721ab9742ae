import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { basename, extname, join, resolve } from 'node:path';
import { makeEntry, type CommandEntry, type CommandHandler, type CommandSpec } from './command.js';
import { importFresh } from './module-loader.js';
import { ConfigError } from './errors.js';
import type { LineServer } from './line-server.js';

export const COMMAND_FILE_EXTENSIONS = new Set(['.ts', '.mts', '.js', '.mjs']);
const COMMAND_NAME = /^[a-z][a-z0-9_]{0,63}$/;

/** The object form a command file may default-export: a name, a handler, and the spec fields. */
export type CommandDefinition<Spec extends CommandSpec = CommandSpec> = Spec & {
  name: string;
  run: CommandHandler;
};

/**
 * Typed identity for command files: `export default defineCommand({ name, access, run })`.
 * A session server's files use `defineSessionCommand` (spec field `session`, typed context).
 */
export function defineCommand<Spec extends CommandSpec = CommandSpec>(definition: CommandDefinition<Spec>): CommandDefinition<Spec> {
  return definition;
}

export function isCommandFile(path: string): boolean {
  return COMMAND_FILE_EXTENSIONS.has(extname(path)) && !path.endsWith('.d.ts') && !basename(path).startsWith('.');
}

/**
 * Commands dropped into a folder: one file, one command. A file's command may not take the
 * name of a class command or of another file's command; such a file is refused, with its
 * path, never silently shadowing the other.
 */
export class CommandFiles {
  /** file path → command name it provides */
  private readonly byFile = new Map<string, string>();

  constructor(private readonly server: LineServer, readonly folder: string) {
    this.folder = resolve(folder);
  }

  /** Loads every command file of the folder; returns the problems (also logged). */
  async loadAll(): Promise<Error[]> {
    if (!existsSync(this.folder)) return [];
    const problems: Error[] = [];
    const names = (await readdir(this.folder)).filter(isCommandFile).sort();
    for (const name of names) {
      const error = await this.load(join(this.folder, name), 'add');
      if (error) problems.push(error);
    }
    return problems;
  }

  /**
   * Loads (or reloads) one file. On any failure the previous version stays in service and
   * the error is returned; otherwise the new version replaces it in one step.
   */
  async load(path: string, action: 'add' | 'change' = 'change'): Promise<Error | undefined> {
    const file = resolve(path);
    let entry: CommandEntry;
    try {
      const module = await importFresh(file);
      entry = toEntry(module.default, file, (spec) => this.server.validateCommandSpec(spec));
      const owner = this.ownerOf(entry.name);
      if (owner !== undefined && owner !== file) {
        throw new ConfigError(`${file}: command "${entry.name}" is already defined by ${owner}`);
      }
    } catch (error) {
      const err = error instanceof Error ? error : new Error(String(error));
      this.server.log.error({ err, file }, 'command file not loaded; the previous version (if any) stays');
      this.server.hooks.reload.call({ kind: 'command', file, action, error: err });
      return err;
    }
    const previous = this.byFile.get(file);
    if (previous !== undefined && previous !== entry.name) this.server.commands.delete(previous);
    this.server.commands.set(entry);
    this.byFile.set(file, entry.name);
    this.server.log.info({ file, command: entry.name, action }, 'command loaded');
    this.server.hooks.reload.call({ kind: 'command', file, action });
    return undefined;
  }

  /** How many commands come from files now. */
  get size(): number {
    return this.byFile.size;
  }

  /** Loads every file of the folder again and removes the commands whose file is gone (SIGHUP). */
  async reloadAll(): Promise<Error[]> {
    for (const file of [...this.byFile.keys()]) if (!existsSync(file)) this.unload(file);
    return this.loadAll();
  }

  /** Unregisters the command a deleted file provided. */
  unload(path: string): void {
    const file = resolve(path);
    const name = this.byFile.get(file);
    if (name === undefined) return;
    this.byFile.delete(file);
    if (this.server.commands.get(name)?.source === file) this.server.commands.delete(name);
    this.server.log.info({ file, command: name }, 'command removed');
    this.server.hooks.reload.call({ kind: 'command', file, action: 'delete' });
  }

  /** Who defines `name` now: a file path, a class name, or undefined. */
  private ownerOf(name: string): string | undefined {
    return this.server.commands.get(name)?.source;
  }
}

function toEntry(exported: unknown, file: string, validateSpec: (spec: Record<string, unknown>) => void): CommandEntry {
  const stem = basename(file, extname(file)).toLowerCase();
  if (typeof exported === 'function') {
    assertName(stem, file);
    return makeEntry(stem, exported as CommandHandler, {}, file);
  }
  if (typeof exported !== 'object' || exported === null) {
    throw new ConfigError(`${file}: default export must be a function or { name, run }`);
  }
  const definition = exported as Partial<CommandDefinition>;
  const name = typeof definition.name === 'string' ? definition.name.toLowerCase() : stem;
  assertName(name, file);
  if (typeof definition.run !== 'function') throw new ConfigError(`${file}: "run" must be a function`);
  for (const field of ['usage', 'summary', 'failure'] as const) {
    if (definition[field] !== undefined && typeof definition[field] !== 'string') throw new ConfigError(`${file}: "${field}" must be a string`);
  }
  const { run, name: _name, ...spec } = definition as CommandDefinition;
  if (spec.access !== undefined && spec.access !== 'read' && spec.access !== 'write' && typeof spec.access !== 'function') {
    throw new ConfigError(`${file}: "access" must be 'read', 'write' or a function`);
  }
  try {
    validateSpec(spec as Record<string, unknown>);
  } catch (error) {
    throw new ConfigError(`${file}: ${(error as Error).message}`);
  }
  return makeEntry(name, run, spec, file);
}

function assertName(name: string, file: string): void {
  if (!COMMAND_NAME.test(name)) throw new ConfigError(`${file}: command name "${name}" must match ${COMMAND_NAME}`);
}
