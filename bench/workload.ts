/**
 * The requests the load generator sends: alternating `put k<i> <value>` / `get k<i>`
 * (or `SET` / `GET` for redis-server), i cycling through a fixed key space so a
 * session stays the same size however long the run. The whole cycle is one shared
 * buffer, so sending n requests is writing a slice of it: no per-request allocation
 * in the generator.
 */
export type Dialect = 'sessionserver' | 'redis' | 'line';

export interface Workload {
  /** Every request of one cycle, back to back. */
  readonly bytes: Buffer;
  /** offsets[r] is where request r starts; offsets[count] === bytes.length. */
  readonly offsets: Uint32Array;
  /** Requests in one cycle. */
  readonly count: number;
  /** Sent once per connection before the loop starts (sessionserver: `new`), or null. */
  readonly greeting: Buffer | null;
}

export const DEFAULT_KEY_SPACE = 1000;
export const DEFAULT_VALUE_BYTES = 32;

export function buildWorkload(dialect: Dialect, keySpace = DEFAULT_KEY_SPACE, valueBytes = DEFAULT_VALUE_BYTES): Workload {
  // No spaces in the value: redis inline commands split on them.
  const value = 'v'.repeat(valueBytes);
  const [put, get] = dialect === 'redis' ? ['SET', 'GET'] : ['put', 'get'];
  const lines: string[] = [];
  for (let i = 0; i < keySpace; i++) {
    lines.push(`${put} k${i} ${value}\r\n`, `${get} k${i}\r\n`);
  }
  const offsets = new Uint32Array(lines.length + 1);
  let total = 0;
  lines.forEach((line, index) => {
    offsets[index] = total;
    total += Buffer.byteLength(line);
  });
  offsets[lines.length] = total;
  return {
    bytes: Buffer.from(lines.join('')),
    offsets,
    count: lines.length,
    greeting: dialect === 'sessionserver' ? Buffer.from('new\r\n') : null,
  };
}
