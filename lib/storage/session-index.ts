/**
 * What the filesystem store knows about its sessions without touching the disk: which exist,
 * when each was last accessed, and its own lifetime once known. Built once at start from one
 * directory scan (file mtimes; contents unread), kept up to date by every operation since,
 * so a sweep costs the sessions it deletes, not the sessions stored.
 *
 * Sessions without an own lifetime sit in a Map kept in access order (an access moves the
 * entry to the end), so the idle ones are a prefix of it. Sessions with an own lifetime sit in
 * a min-heap by the moment it ends. An entry found at start whose access is older than the
 * start has not been read since: its own lifetime is unknown (`undefined`) until it is.
 */
export interface IndexedSession {
  /** Milliseconds since the epoch. */
  readonly lastAccess: number;
  /** Seconds; null: the server's max lifetime applies; undefined: not read since start, not known. */
  readonly lifetime: number | null | undefined;
}

interface Timed {
  lastAccess: number;
  lifetime: number;
}

export class SessionIndex {
  /** id → last access, in access order; sessions with no own lifetime, or one not known yet. */
  private readonly idle = new Map<string, number>();
  private readonly timed = new Map<string, Timed>();
  /** [ends at (ms), id] for the entries of `timed`; stale pairs (the entry moved on) are skipped. */
  private heap: Array<[number, string]> = [];
  /** Accesses before this (the start's scan) are the files' mtimes, not accesses this process saw. */
  private scannedAt = 0;

  get size(): number {
    return this.idle.size + this.timed.size;
  }

  has(id: string): boolean {
    return this.idle.has(id) || this.timed.has(id);
  }

  get(id: string): IndexedSession | undefined {
    const last = this.idle.get(id);
    if (last !== undefined) return { lastAccess: last, lifetime: last < this.scannedAt ? undefined : null };
    return this.timed.get(id);
  }

  /** Fills the index from the start's scan: `files` as [id, mtime], any order. */
  load(files: Array<[string, number]>, scannedAt: number): void {
    this.scannedAt = scannedAt;
    // An mtime in the future (a clock set back) still counts as "not read since start".
    files.sort((a, b) => a[1] - b[1]);
    for (const [id, mtime] of files) this.idle.set(id, Math.min(mtime, scannedAt - 1));
  }

  /** Records an access (or a new session) now, with its own lifetime (null: none). */
  record(id: string, lifetime: number | null, at = Date.now()): void {
    // `at` is never before scannedAt: the entry now counts as read.
    const lastAccess = Math.max(at, this.scannedAt);
    this.idle.delete(id);
    if (lifetime === null) {
      this.timed.delete(id);
      this.idle.set(id, lastAccess);
      return;
    }
    const entry = { lastAccess, lifetime };
    this.timed.set(id, entry);
    this.push([endOf(entry), id]);
  }

  /** Learns the own lifetime of an entry not read since start, without recording an access. */
  learn(id: string, lifetime: number | null): void {
    const last = this.idle.get(id);
    if (last === undefined || last >= this.scannedAt || lifetime === null) return;
    this.idle.delete(id);
    const entry = { lastAccess: last, lifetime };
    this.timed.set(id, entry);
    this.push([endOf(entry), id]);
  }

  delete(id: string): void {
    this.idle.delete(id);
    this.timed.delete(id);
  }

  /** Every indexed id. */
  ids(): IterableIterator<string> {
    return (function* (idle: Map<string, number>, timed: Map<string, Timed>) {
      yield* idle.keys();
      yield* timed.keys();
    })(this.idle, this.timed);
  }

  /**
   * The sessions a sweep should look at: those without an own lifetime (or one not known)
   * accessed before `cutoff`, and those whose own lifetime ended by `now`. Costs what it
   * returns (plus one), whatever the index holds. Timed entries returned leave the heap: the
   * caller hands back (`keep`) those it does not delete.
   */
  expired(cutoff: number, now: number): string[] {
    const found: string[] = [];
    for (const [id, last] of this.idle) {
      if (last >= cutoff) break;
      found.push(id);
    }
    while (this.heap.length > 0 && this.heap[0]![0] <= now) {
      const [end, id] = this.pop();
      const entry = this.timed.get(id);
      if (entry && endOf(entry) === end) found.push(id);
    }
    return found;
  }

  /** Puts a timed entry returned by `expired` back on the heap (it was held, say). */
  keep(id: string): void {
    const entry = this.timed.get(id);
    if (entry) this.push([endOf(entry), id]);
  }

  private push(item: [number, string]): void {
    // Accesses leave stale pairs behind: rebuild once they outnumber the live ones.
    if (this.heap.length > 2 * this.timed.size + 64) this.rebuildHeap();
    const heap = this.heap;
    heap.push(item);
    for (let i = heap.length - 1; i > 0; ) {
      const parent = (i - 1) >> 1;
      if (heap[parent]![0] <= heap[i]![0]) break;
      [heap[parent], heap[i]] = [heap[i]!, heap[parent]!];
      i = parent;
    }
  }

  private pop(): [number, string] {
    const heap = this.heap;
    const top = heap[0]!;
    const last = heap.pop()!;
    if (heap.length > 0) {
      heap[0] = last;
      for (let i = 0; ; ) {
        const left = 2 * i + 1;
        const right = left + 1;
        let smallest = i;
        if (left < heap.length && heap[left]![0] < heap[smallest]![0]) smallest = left;
        if (right < heap.length && heap[right]![0] < heap[smallest]![0]) smallest = right;
        if (smallest === i) break;
        [heap[smallest], heap[i]] = [heap[i]!, heap[smallest]!];
        i = smallest;
      }
    }
    return top;
  }

  private rebuildHeap(): void {
    const live: Array<[number, string]> = [...this.timed].map(([id, entry]) => [endOf(entry), id]);
    this.heap = [];
    live.sort((a, b) => a[0] - b[0]);
    // A sorted array is a valid min-heap.
    this.heap = live;
  }
}

function endOf(entry: Timed): number {
  return entry.lastAccess + entry.lifetime * 1000;
}
