import { appendFile, readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { createInterface, type Interface } from 'node:readline';
import type { ConnectionOptions as TlsOptions } from 'node:tls';
import { SessionConnectionError, SessionLostError, SessionServerError } from '../client/errors.js';
import { SessionClient } from '../client/session-client.js';

/** `sessionserver client`: a prompt like redis-cli's, a one-shot request, or requests from stdin. */
export interface ClientCommandOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 9090. */
  port?: number;
  /** Speak TLS: `true`, or node:tls options (`ca`, `cert`, `key` for mutual TLS, …). */
  tls?: boolean | TlsOptions;
  /**
   * Log in first: what follows `auth`, i.e. `<token>` or `<user> <password>`. Sent before any
   * request (and again after a reconnect); if it is refused, nothing else is sent.
   */
  auth?: string;
  /** Milliseconds for connecting and for each reply. Default 30000. */
  timeout?: number;
  /** One-shot mode: the request as words, e.g. `['open', sid, 'r']`; prints the reply and exits. */
  command?: string[];
  /** Where requests come from without `command`. Default process.stdin. */
  input?: NodeJS.ReadableStream;
  /** Replies. Default process.stdout. */
  output?: NodeJS.WritableStream;
  /** Failures and notices. Default process.stderr. */
  errorOutput?: NodeJS.WritableStream;
  /** Prompt mode; default: when `input` is a terminal. Otherwise each input line is a request. */
  interactive?: boolean;
  /** Prompt history file; default ~/.sessionserver_history; null keeps no history. */
  historyFile?: string | null;
}

/** Exit codes, for scripts. */
export const CLIENT_EXIT = {
  ok: 0,
  /** The server answered `err` (one-shot), or some request did (stdin mode). */
  serverError: 1,
  /** No connection, or it was lost. */
  connectionError: 2,
} as const;

const HISTORY_SIZE = 1000;

/**
 * Runs the client and resolves the process exit code (see CLIENT_EXIT). One-shot mode
 * prints the `ok` payload alone (`sid=$(sessionserver client new)`) and an `err` to stderr;
 * stdin mode prints each reply line as the server sent it, one per request; the prompt
 * prints replies the same way, shows host:port and the open session, keeps history, and
 * completes command names from the server's `help`.
 */
export async function runClient(options: ClientCommandOptions = {}): Promise<number> {
  const output = options.output ?? process.stdout;
  const errorOutput = options.errorOutput ?? process.stderr;
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? 9090;
  const oneShotLine = options.command && options.command.length > 0 ? options.command.join(' ') : null;
  const input = options.input ?? process.stdin;
  const interactive = oneShotLine === null && (options.interactive ?? (input as { isTTY?: boolean }).isTTY === true);
  let client: SessionClient;
  try {
    // Only the prompt reconnects: a one-shot request or a script fails when its connection drops.
    client = await SessionClient.connect({ host, port, tls: options.tls, timeout: options.timeout, reconnect: interactive });
  } catch (error) {
    errorOutput.write(`${(error as Error).message}\n`);
    return CLIENT_EXIT.connectionError;
  }
  try {
    if (options.auth !== undefined) {
      const refused = await logIn(client, options.auth, errorOutput);
      if (refused !== undefined) return refused;
    }
    if (oneShotLine !== null) return await oneShot(client, oneShotLine, output, errorOutput);
    if (interactive) {
      const historyFile = options.historyFile === undefined ? join(homedir(), '.sessionserver_history') : options.historyFile;
      return await prompt(client, `${host}:${port}`, input, output, errorOutput, historyFile);
    }
    return await script(client, input, output, errorOutput);
  } finally {
    client.disconnect();
  }
}

/** `auth <credentials>`; the exit code when it failed. The credentials are never printed. */
async function logIn(client: SessionClient, credentials: string, errorOutput: NodeJS.WritableStream): Promise<number | undefined> {
  try {
    await client.request(`auth ${credentials.trim()}`);
    return undefined;
  } catch (error) {
    errorOutput.write(`${describe(error)}\n`);
    return error instanceof SessionServerError ? CLIENT_EXIT.serverError : CLIENT_EXIT.connectionError;
  }
}

async function oneShot(client: SessionClient, line: string, output: NodeJS.WritableStream, errorOutput: NodeJS.WritableStream): Promise<number> {
  try {
    const payload = await client.request(line);
    if (payload !== '') output.write(`${isHelpList(line) ? payload.split('; ').join('\n') : payload}\n`);
    return CLIENT_EXIT.ok;
  } catch (error) {
    errorOutput.write(`${describe(error)}\n`);
    return error instanceof SessionServerError ? CLIENT_EXIT.serverError : CLIENT_EXIT.connectionError;
  }
}

/** Requests from a pipe or file, one per line, pipelined; replies printed in order, one line each. */
async function script(client: SessionClient, input: NodeJS.ReadableStream, output: NodeJS.WritableStream, errorOutput: NodeJS.WritableStream): Promise<number> {
  const lines = createInterface({ input, terminal: false, crlfDelay: Infinity });
  let exitCode: number = CLIENT_EXIT.ok;
  let printed: Promise<void> = Promise.resolve();
  for await (const raw of lines) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const reply = client.request(line).then(
      (payload) => (payload === '' ? 'ok' : `ok ${payload}`),
      (error: unknown) => {
        if (error instanceof SessionServerError) {
          exitCode = Math.max(exitCode, CLIENT_EXIT.serverError);
          return `err ${error.message}`;
        }
        exitCode = CLIENT_EXIT.connectionError;
        errorOutput.write(`${describe(error)}\n`);
        return null;
      },
    );
    printed = printed.then(async () => {
      const text = await reply;
      if (text !== null) output.write(`${text}\n`);
    });
  }
  await printed;
  return exitCode;
}

async function prompt(
  client: SessionClient,
  address: string,
  input: NodeJS.ReadableStream,
  output: NodeJS.WritableStream,
  errorOutput: NodeJS.WritableStream,
  historyFile: string | null,
): Promise<number> {
  const commands = await client.help().then(
    (list) => list.split('; ').map((usage) => usage.split(' ')[0]!),
    () => [] as string[],
  );
  const history = historyFile ? await loadHistory(historyFile) : [];
  const rl: Interface = createInterface({
    input,
    output,
    terminal: (output as { isTTY?: boolean }).isTTY === true,
    history,
    historySize: HISTORY_SIZE,
    removeHistoryDuplicates: true,
    completer: (line: string) => {
      const word = line.trimStart().toLowerCase();
      if (word.includes(' ')) return [[], line];
      const hits = [...commands, 'exit'].filter((name) => name.startsWith(word));
      return [hits, line];
    },
  });
  const setPrompt = () => {
    const held = client.sessionId ? ` [${client.sessionId} ${client.mode}]` : '';
    rl.setPrompt(`${address}${held}> `);
  };
  client.on('sessionLost', (error: SessionLostError) => errorOutput.write(`(${error.message})\n`));
  client.on('reconnecting', ({ attempt }: { attempt: number }) => {
    if (attempt === 1) errorOutput.write('(connection lost, reconnecting)\n');
  });
  setPrompt();
  rl.prompt();
  for await (const raw of rl) {
    const line = raw.trim();
    if (line === '') {
      rl.prompt();
      continue;
    }
    const word = line.split(' ', 1)[0]!.toLowerCase();
    if (word === 'auth') forget(rl, line);
    else if (historyFile) await appendFile(historyFile, `${line}\n`, { mode: 0o600 }).catch(() => {});
    if (word === 'exit') break;
    try {
      const payload = await client.request(line);
      if (isHelpList(line)) output.write(`${payload.split('; ').join('\n')}\n`);
      else output.write(payload === '' ? 'ok\n' : `ok ${payload}\n`);
      if (word === 'quit') break;
    } catch (error) {
      if (error instanceof SessionServerError) output.write(`err ${error.message}\n`);
      else errorOutput.write(`(${describe(error)})\n`);
    }
    setPrompt();
    rl.prompt();
  }
  rl.close();
  return CLIENT_EXIT.ok;
}

/** An `auth` line holds a secret: kept neither in the history file nor for the up arrow. */
function forget(rl: Interface, line: string): void {
  const history = (rl as unknown as { history?: string[] }).history;
  if (history && history[0]?.trim() === line) history.shift();
}

async function loadHistory(file: string): Promise<string[]> {
  try {
    // The file has the newest line last; readline wants it first.
    // Files written by older versions may hold `auth` lines: never offer them again.
    const lines = (await readFile(file, 'utf8')).split('\n').filter((line) => line !== '' && !/^auth(\s|$)/i.test(line.trim()));
    return lines.slice(-HISTORY_SIZE).reverse();
  } catch {
    return [];
  }
}

function isHelpList(line: string): boolean {
  return line.trim().toLowerCase() === 'help';
}

function describe(error: unknown): string {
  if (error instanceof SessionServerError) return `err ${error.message}`;
  if (error instanceof SessionConnectionError) return error.message;
  return error instanceof Error ? error.message : String(error);
}
