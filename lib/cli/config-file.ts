import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { validateConfig, type SessionServerConfig } from '../config/config.js';
import { ConfigError } from '../core/errors.js';
import { importFresh } from '../core/module-loader.js';

export const CONFIG_FILE_NAMES = ['sessionserver.config.ts', 'sessionserver.config.mts', 'sessionserver.config.js', 'sessionserver.config.mjs'];

/**
 * Loads a config module (TypeScript included, no build step) and returns its default export.
 * Without an explicit path, the first sessionserver.config.* in `cwd` is used, if any.
 */
export async function loadConfigFile(explicitPath?: string, cwd = process.cwd()): Promise<{ config: SessionServerConfig; path?: string }> {
  const path = explicitPath ? resolve(cwd, explicitPath) : CONFIG_FILE_NAMES.map((name) => resolve(cwd, name)).find((p) => existsSync(p));
  if (!path) return { config: {} };
  if (!existsSync(path)) throw new ConfigError(`config file not found: ${path}`);
  let loaded: { default?: unknown };
  try {
    loaded = await importFresh(path);
  } catch (error) {
    // One line, as every other start failure: esbuild's syntax errors span several.
    const reason = String((error as Error).message ?? error).split('\n').map((line) => line.trim()).filter(Boolean).join(' ');
    throw new ConfigError(`could not load ${path}: ${reason}`);
  }
  const config = (loaded.default ?? {}) as SessionServerConfig;
  return { config: validateConfig(config, path), path };
}
