import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';

const LIB = fileURLToPath(new URL('../lib/', import.meta.url));

/** Which folders of lib/ each folder may import at run time: dependencies point one way. */
const MAY_IMPORT: Record<string, string[]> = {
  protocol: ['protocol'],
  config: ['config', 'core', 'storage'], // type-only references to option types are erased
  core: ['core', 'protocol', 'config'],
  locks: ['locks', 'core'],
  auth: ['auth', 'core', 'protocol'],
  storage: ['storage', 'core', 'locks', 'protocol', 'config'],
  session: ['session', 'core', 'locks', 'protocol', 'storage', 'config'],
  client: ['client', 'protocol'],
  metrics: ['metrics', 'core', 'protocol'],
  cli: ['cli', 'core', 'session', 'config', 'client', 'auth', 'storage', 'protocol'],
};

async function sources(folder = LIB): Promise<string[]> {
  const files: string[] = [];
  for (const entry of await readdir(folder, { withFileTypes: true })) {
    const path = join(folder, entry.name);
    if (entry.isDirectory()) files.push(...(await sources(path)));
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) files.push(path);
  }
  return files;
}

/** Relative imports that exist at run time (`import type` is erased). */
async function runtimeImports(file: string): Promise<string[]> {
  const text = await readFile(file, 'utf8');
  const found: string[] = [];
  for (const match of text.matchAll(/^(?:import|export)\s+(?!type\s)([^;]*?)\s+from\s+'(\.[^']+)';/gms)) {
    // `import { type A, type B }` is erased too.
    const names = match[1]!.replace(/[{}\s]/g, '');
    if (names !== '' && names.split(',').every((name) => name.startsWith('type') && name !== 'type')) continue;
    found.push(normalize(join(dirname(file), match[2]!.replace(/\.js$/, '.ts'))));
  }
  for (const match of text.matchAll(/^import\s+'(\.[^']+)';/gm)) found.push(normalize(join(dirname(file), match[1]!.replace(/\.js$/, '.ts'))));
  return found;
}

const folderOf = (file: string) => relative(LIB, file).split('/')[0]!;

test('lib/ folders import only the layers below them', async (t) => {
  const violations: string[] = [];
  for (const file of await sources()) {
    const from = folderOf(file);
    if (from.endsWith('.ts')) continue; // lib/index.ts re-exports everything
    if (!(from in MAY_IMPORT)) violations.push(`${relative(LIB, file)}: lib/${from}/ is a folder the layering does not know yet`);
    for (const target of await runtimeImports(file)) {
      const to = folderOf(target);
      if (!(MAY_IMPORT[from] ?? []).includes(to)) violations.push(`${relative(LIB, file)} → ${relative(LIB, target)}`);
    }
  }
  t.deepEqual(violations, []);
});

test('no import circles in lib/', async (t) => {
  const graph = new Map<string, string[]>();
  for (const file of await sources()) graph.set(file, await runtimeImports(file));
  const cycles: string[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (file: string, path: string[]) => {
    if (state.get(file) === 'done') return;
    if (state.get(file) === 'visiting') {
      cycles.push([...path.slice(path.indexOf(file)), file].map((f) => relative(LIB, f)).join(' → '));
      return;
    }
    state.set(file, 'visiting');
    for (const next of graph.get(file) ?? []) visit(next, [...path, file]);
    state.set(file, 'done');
  };
  for (const file of graph.keys()) visit(file, []);
  t.deepEqual(cycles, []);
  t.true(graph.size > 30, 'the scan saw the tree');
});
