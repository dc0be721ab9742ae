import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const RECORDER = fileURLToPath(new URL('./record-imports.mjs', import.meta.url));

/**
 * The modules a fresh Node process loads to import `entry` (a file path), as resolved URLs:
 * recorded by a module resolve hook, so nothing is guessed from a dependency tree.
 */
export async function modulesLoadedBy(entry: string): Promise<string[]> {
  const { stdout } = await run(process.execPath, ['--import', RECORDER, '--input-type=module', '-e', `await import(${JSON.stringify(entry)}); await globalThis.__reportImports();`]);
  return JSON.parse(stdout) as string[];
}
