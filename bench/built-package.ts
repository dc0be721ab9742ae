import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { REPO_ROOT } from './children.js';

/**
 * The built package (dist/), which is what the bench measures. It is loaded by path at run
 * time and typed by the sources (tsconfig "paths" map `sessionserver` to lib/), so type-checking
 * the bench never reads dist/, stale or missing.
 */
export async function loadBuiltPackage(): Promise<typeof import('sessionserver')> {
  // BENCH_DIST points at another build (a folder with the build's index.js) to compare two versions.
  return import(pathToFileURL(join(process.env.BENCH_DIST ?? join(REPO_ROOT, 'dist'), 'index.js')).href);
}
