import { CommandError } from '../core/errors.js';
import type { SessionLock } from '../locks/lock-table.js';
import type { SessionData } from '../storage/contract.js';
import { countBytes, rememberSessionBytes, sessionBytes } from '../storage/session-size.js';
import type { SessionMode } from '../protocol/session-mode.js';

export type { SessionMode };

/** What a write to a session must fit in. */
export interface SessionLimits {
  /** Bytes the session may hold: UTF-8 keys plus values (maxSessionSize). */
  readonly maxBytes: number;
  /** Bytes the store can still take, when it has a limit (the memory store's maxMemory). */
  readonly storeBytesFree?: () => number;
}

const NO_DATA: SessionData = new Map();
const NO_LIMITS: SessionLimits = { maxBytes: Number.POSITIVE_INFINITY };

/**
 * A session as one connection holds it: the values it loaded plus its own uncommitted
 * changes. The loaded map is shared with the store and copied on the first write.
 * Its size is kept up to date write by write, so a write past the limits is refused
 * before it changes anything.
 */
export class OpenSession {
  id: string;
  mode: SessionMode;
  lock: SessionLock | null;
  /** Unsaved changes exist (or the session was just created and must be written). */
  dirty: boolean;
  private data: SessionData;
  private owned = false;
  /** Bytes of `data`; counted on the first write (a reader never pays for it). */
  private bytes: number | null = null;
  /** What the store holds for this session (the loaded or last handed-over map). */
  private saved: SessionData;
  private savedBefore: SessionData;
  private readonly limits: SessionLimits;

  constructor(id: string, mode: SessionMode, data: SessionData | undefined, lock: SessionLock | null, limits: SessionLimits = NO_LIMITS) {
    this.id = id;
    this.mode = mode;
    this.lock = lock;
    this.data = data ?? NO_DATA;
    this.saved = this.savedBefore = this.data;
    this.dirty = data === undefined;
    this.limits = limits;
  }

  get writable(): boolean {
    return this.mode !== 'r';
  }

  get(key: string): string | undefined {
    return this.data.get(key);
  }

  has(key: string): boolean {
    return this.data.has(key);
  }

  keys(): string[] {
    return [...this.data.keys()];
  }

  entries(): IterableIterator<[string, string]> {
    return this.data.entries();
  }

  get size(): number {
    return this.data.size;
  }

  /** UTF-8 bytes of the session's keys and values, pending changes included. */
  get byteSize(): number {
    return (this.bytes ??= sessionBytes(this.data));
  }

  put(key: string, value: string): void {
    this.assertWritable();
    const previous = this.data.get(key);
    // Overwriting a key leaves its own bytes counted: only the values differ (one count fewer per put).
    const growth = previous === undefined ? Buffer.byteLength(key) + Buffer.byteLength(value) : Buffer.byteLength(value) - Buffer.byteLength(previous);
    const bytes = this.byteSize + growth;
    this.admit(bytes);
    this.writableData().set(key, value);
    this.bytes = bytes;
    this.dirty = true;
  }

  remove(key: string): boolean {
    const previous = this.data.get(key);
    if (previous === undefined) return false;
    const bytes = this.byteSize - Buffer.byteLength(key) - Buffer.byteLength(previous);
    this.writableData().delete(key);
    this.bytes = bytes;
    this.dirty = true;
    return true;
  }

  replaceAll(values: Iterable<[string, string]>): void {
    this.assertWritable();
    const data = new Map(values);
    const bytes = countBytes(data);
    this.admit(bytes);
    this.data = data;
    this.bytes = bytes;
    this.owned = true;
    this.dirty = true;
  }

  /** The values to save. The store may keep the map, so the next write copies it first. */
  handOver(): SessionData {
    if (this.bytes !== null) rememberSessionBytes(this.data, this.bytes);
    this.savedBefore = this.saved;
    this.saved = this.data;
    this.owned = false;
    this.dirty = false;
    return this.data;
  }

  /** Takes back values handed over for a save that failed: they are pending again. */
  restore(values: SessionData): void {
    this.data = values;
    this.bytes = null;
    this.saved = this.savedBefore;
    this.owned = false;
    this.dirty = true;
  }

  /**
   * Refuses a write that would grow the session past maxSessionSize, or the store past
   * its memory limit were the session saved now. A write that does not grow always fits,
   * so a session over a lowered limit can still shrink.
   */
  private admit(bytes: number): void {
    const current = this.byteSize;
    if (bytes <= current) return;
    if (bytes > this.limits.maxBytes) throw CommandError.of('E_SESSION_TOO_LARGE', { limit: this.limits.maxBytes });
    const free = this.limits.storeBytesFree?.();
    if (free !== undefined && bytes - sessionBytes(this.saved) > free) throw CommandError.of('E_STORE_FULL');
  }

  private writableData(): Map<string, string> {
    this.assertWritable();
    if (!this.owned) {
      this.data = new Map(this.data);
      this.owned = true;
    }
    return this.data as Map<string, string>;
  }

  private assertWritable(): void {
    if (!this.writable) throw CommandError.of('E_READ_ONLY_SESSION');
  }
}
