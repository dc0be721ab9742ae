import { execFile } from 'node:child_process';
import { BIN } from './cli-process.js';

let listed: Promise<Set<string>> | undefined;

/** The flags `sessionserver serve --help` lists: the real CLI, not a copy of its table. */
export function serveFlags(): Promise<Set<string>> {
  listed ??= new Promise((resolve, reject) => {
    execFile(process.execPath, [BIN, 'serve', '--help'], (error, stdout) => {
      if (error) return reject(error);
      resolve(new Set([...stdout.matchAll(/^\s+(?:-\w, )?(--[a-z0-9-]+)/gm)].map((match) => match[1]!)));
    });
  });
  return listed;
}
