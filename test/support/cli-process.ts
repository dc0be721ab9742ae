import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { connect, createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { ExecutionContext } from 'ava';

export const BIN = fileURLToPath(new URL('../../bin/sessionserver.js', import.meta.url));
export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

export async function freePort(): Promise<number> {
  const probe = createServer();
  probe.listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const { port } = probe.address() as { port: number };
  probe.close();
  await once(probe, 'close');
  return port;
}

export interface CliServer {
  child: ChildProcess;
  port: number;
  output(): string;
  /** Resolves with the exit code (or signal name) once the process has ended. */
  exited: Promise<number | string>;
}

async function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * Runs the built `sessionserver` binary and resolves once its port accepts connections, or
 * rejects with its output once it has exited. The deadline only turns a hang into a clear
 * failure: a busy machine (or coverage) may take many seconds to start a process.
 */
export async function startCli(t: ExecutionContext, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<CliServer> {
  const port = await freePort();
  const child = spawn(process.execPath, [BIN, 'serve', '--port', String(port), ...args], {
    cwd: options.cwd ?? REPO_ROOT,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  let hasExited = false;
  const exited = new Promise<number | string>((resolve) =>
    child.once('exit', (code, signal) => {
      hasExited = true;
      resolve(code ?? signal ?? -1);
    }),
  );
  // Its output is complete once the pipes have closed, after the exit.
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const deadline = performance.now() + 60_000;
  while (!(await accepts(port))) {
    if (hasExited) {
      await closed;
      throw new Error(`sessionserver exited early:\n${output}`);
    }
    if (performance.now() > deadline) throw new Error(`sessionserver did not start within a minute:\n${output}`);
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 20))]);
  }
  return { child, port, output: () => output, exited };
}
