import { fork, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Every process the bench starts is tracked here and killed when the bench ends,
 * however it ends: normal exit, an exception, Ctrl-C, SIGTERM.
 */
export const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = dirname(BENCH_DIR);

const live = new Set<ChildProcess>();

export function track<C extends ChildProcess>(child: C): C {
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}

export function killAllChildren(): void {
  for (const child of live) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  live.clear();
}

let cleanupInstalled = false;

export function killChildrenOnExit(): void {
  if (cleanupInstalled) return;
  cleanupInstalled = true;
  process.on('exit', killAllChildren);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      process.stderr.write(`\nbench: ${signal}, stopping children\n`);
      killAllChildren();
      process.exit(130);
    });
  }
}

/** Starts one of the bench's TypeScript scripts in its own Node process, with IPC. */
export function forkBenchScript(script: string, nodeOptions: string[] = []): ChildProcess {
  return track(
    fork(join(BENCH_DIR, script), [], {
      cwd: REPO_ROOT,
      execArgv: ['--import', 'tsx', ...nodeOptions],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    }),
  );
}

/** The child's next IPC message that `accept` recognizes, or a rejection on timeout or exit. */
export function nextMessage<T>(child: ChildProcess, accept: (message: any) => message is T, timeoutMs: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => finish(new Error(`${what}: no answer within ${timeoutMs} ms`)), timeoutMs);
    const onMessage = (message: unknown) => {
      if (accept(message)) finish(null, message);
    };
    const onExit = (code: number | null, signal: string | null) => finish(new Error(`${what}: process exited (${signal ?? code})`));
    function finish(error: Error | null, message?: T): void {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
      if (error) reject(error);
      else resolve(message!);
    }
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
}

/** Waits for the child to exit; kills it if it has not within the time. */
export async function stopWithin(child: ChildProcess, timeoutMs: number, ask: () => void): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  ask();
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  await exited;
  clearTimeout(timer);
}

/**
 * Runs one bench part when its file is run directly (`node --import tsx bench/<part>.ts`):
 * prints its table, cleans up its children, and exits non-zero on failure.
 */
export function runWhenMain(moduleUrl: string, what: string, run: (flags: { quick: boolean; cpuProfile: boolean }) => Promise<string>): void {
  if (moduleUrl !== `file://${process.argv[1]}`) return;
  killChildrenOnExit();
  run({ quick: process.argv.includes('--quick') || process.env.BENCH_QUICK === '1', cpuProfile: process.argv.includes('--cpu-prof') })
    .then((text) => console.log(`\n${text}`))
    .catch((error: unknown) => {
      console.error(`${what} bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
      process.exitCode = 1;
    })
    .finally(() => killAllChildren());
}
