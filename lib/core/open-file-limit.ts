import { readFileSync } from 'node:fs';

/**
 * File descriptors kept free for everything that is not a client: the listener, store files
 * and connections, logs, module loading. Connections take what is left.
 */
export const RESERVED_FILE_DESCRIPTORS = 64;

/**
 * The soft limit on open files of this process (`ulimit -n`), read from /proc/self/limits
 * on Linux; null where it is unknown (other systems) or unlimited.
 */
export function openFileLimit(limitsFile = '/proc/self/limits'): number | null {
  let text: string;
  try {
    text = readFileSync(limitsFile, 'utf8');
  } catch {
    return null;
  }
  const soft = /^Max open files\s+(\S+)/m.exec(text)?.[1];
  if (soft === undefined || soft === 'unlimited') return null;
  const limit = Number(soft);
  return Number.isSafeInteger(limit) && limit > 0 ? limit : null;
}

/** How many clients fit under an open-file limit with the reserve left over (at least 1). */
export function connectionsWithin(openFiles: number): number {
  return Math.max(1, openFiles - RESERVED_FILE_DESCRIPTORS);
}
