import type { SessionData } from './contract.js';

// A map handed to a store is never changed again (callers copy before writing), so its
// size, once known, stays true: the memory store and the next open of the same map reuse it.
const known = new WeakMap<SessionData, number>();

/** UTF-8 bytes of one key and its value: the unit of maxSessionSize and maxMemory. */
export function entryBytes(key: string, value: string): number {
  return Buffer.byteLength(key) + Buffer.byteLength(value);
}

/** UTF-8 bytes of these keys and values, counted now. */
export function countBytes(entries: Iterable<readonly [string, string]>): number {
  let bytes = 0;
  for (const [key, value] of entries) bytes += entryBytes(key, value);
  return bytes;
}

/** UTF-8 bytes of a stored (no longer changing) session's keys and values; counted once per map. */
export function sessionBytes(data: SessionData): number {
  let bytes = known.get(data);
  if (bytes === undefined) {
    bytes = countBytes(data);
    known.set(data, bytes);
  }
  return bytes;
}

/** Records the size of a map that will not change again, which its owner tracked while building it. */
export function rememberSessionBytes(data: SessionData, bytes: number): void {
  known.set(data, bytes);
}
