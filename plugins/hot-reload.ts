/**
 * hot-reload — `sessionserver serve --watch`: reloads command files and plugin files on save.
 * A version that fails to load is reported (file and line) and the previous one stays;
 * connections, sessions and locks are untouched; running commands finish on their version.
 */
import { watch, type FSWatcher } from 'chokidar';
import { resolve } from 'node:path';
import type { LineServer } from '../lib/index.js';
import { isCommandFile } from '../lib/core/command-files.js';
import { definePlugin } from '../lib/core/plugin-host.js';

export default definePlugin<undefined, LineServer>({
  name: 'hot-reload',
  // Applied after every other plugin, so it watches all of their files.
  enforce: 'post',
  async apply(server, _options, plugin) {
    const commandFolder = server.commandFiles?.folder;
    const self = resolve(new URL(import.meta.url).pathname);
    const pluginFiles = new Set(server.plugins.files().filter((file) => file !== self));
    const targets = [...(commandFolder ? [commandFolder] : []), ...pluginFiles];
    if (targets.length === 0) return;
    // One change at a time per file, in the order saved: a fast double save must not race.
    const pending = new Map<string, Promise<unknown>>();
    const serialize = (file: string, work: () => Promise<unknown> | unknown) => {
      const next = (pending.get(file) ?? Promise.resolve()).then(work, work);
      pending.set(file, next);
    };
    const watcher: FSWatcher = watch(targets, { ignoreInitial: true, depth: 0, awaitWriteFinish: { stabilityThreshold: 40, pollInterval: 10 } });
    const onFile = (action: 'add' | 'change' | 'unlink') => (path: string) => {
      const file = resolve(path);
      if (pluginFiles.has(file)) {
        if (action !== 'unlink') serialize(file, () => server.plugins.reload(file));
        return;
      }
      if (!server.commandFiles || !isCommandFile(file)) return;
      const commands = server.commandFiles;
      serialize(file, () => (action === 'unlink' ? commands.unload(file) : commands.load(file, action)));
    };
    watcher.on('add', onFile('add')).on('change', onFile('change')).on('unlink', onFile('unlink'));
    watcher.on('error', (error) => server.log.error({ err: error }, 'file watcher error'));
    // Once listen() resolves, every save is seen.
    plugin.onDispose(() => watcher.close());
    await new Promise<void>((resolve) => watcher.once('ready', () => resolve()));
    plugin.log.info({ watching: targets }, 'hot reload on');
  },
});
