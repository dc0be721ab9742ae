import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { tsImport } from 'tsx/esm/api';
import { validateConfig, type SessionServerConfig } from '../session/config.js';
import { ConfigError } from '../core/errors.js';

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
    throw new ConfigError(`could not load ${path}: ${(error as Error).message}`);
  }
  const config = (loaded.default ?? {}) as SessionServerConfig;
  return { config: validateConfig(config, path), path };
}

/**
 * Imports a .ts/.mts/.js/.mjs module as it is on disk now, bypassing the module cache,
 * so hot reload sees each saved version.
 */
export async function importFresh(path: string): Promise<{ default?: unknown } & Record<string, unknown>> {
  const module = (await tsImport(pathToFileURL(path).href, import.meta.url)) as { default?: unknown } & Record<string, unknown>;
  return unwrapInterop(module);
}

/**
 * A .ts file outside a `"type": "module"` package is compiled to CommonJS, and its
 * `export default` then arrives wrapped once more (`{ default: { __esModule, default } }`).
 */
export function unwrapInterop<M extends { default?: unknown }>(module: M): M {
  const inner = module.default as { __esModule?: boolean; default?: unknown } | undefined;
  if (inner && typeof inner === 'object' && inner.__esModule === true && 'default' in inner) {
    return { ...module, default: inner.default };
  }
  return module;
}
