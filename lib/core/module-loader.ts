import { pathToFileURL } from 'node:url';

type LoadedModule = { default?: unknown } & Record<string, unknown>;
type TsImport = (specifier: string, parent: string) => Promise<unknown>;

let tsImport: Promise<TsImport> | null = null;

/**
 * tsx (and esbuild behind it) is loaded the first time a file is, not by importing the
 * core: a server without command files, plugins or a config file never pays for it.
 */
function loader(): Promise<TsImport> {
  tsImport ??= import('tsx/esm/api').then((api) => api.tsImport as TsImport);
  return tsImport;
}

/**
 * Imports a .ts/.mts/.js/.mjs module as it is on disk now, bypassing the module cache,
 * so hot reload sees each saved version.
 */
export async function importFresh(path: string): Promise<LoadedModule> {
  const load = await loader();
  return unwrapInterop((await load(pathToFileURL(path).href, import.meta.url)) as LoadedModule);
}

/** Imports a package (or a path) as seen from `parentUrl`, TypeScript included. */
export async function importSpecifier(specifier: string, parentUrl: string): Promise<LoadedModule> {
  const load = await loader();
  return unwrapInterop((await load(specifier, parentUrl)) as LoadedModule);
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
