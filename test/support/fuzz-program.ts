import fc from 'fast-check';
import { splitRequest } from './protocol-model.js';

/**
 * Random protocol programs for the fuzz test: steps on a few connections, each a batch of
 * request lines (valid commands, random bytes, over-long lines) sent in random chunks and
 * ended in a random way. Plain data, so fast-check can print and shrink a failing program;
 * session ids are picked at run time from the ids the model knows (`IdPick`).
 */

/** Ids and keys come from small sets so that they collide, prototype names included. */
export const FIXED_IDS = ['s1', 's2', '__proto__', 'constructor', 'toString', 'hasOwnProperty', 'a,b-c_d'] as const;
/** Ids the server must refuse (a path, a pattern, an empty one, a non-ASCII letter). */
const INVALID_IDS = ['../s1', 's1.bak', 's*', '{s1}', '', 'sé', 'x'.repeat(129)] as const;
const KEYS = ['', 'a', 'b', '1', '0', '__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', 'a|b', 'ключ', '😀'] as const;
const VALUE_CHARS = ['a', 'b', 'z', '0', '1', ' ', ' ', '|', ';', ':', '"', '{', '}', '\\', 'é', '€', '😀', '\t', '\r', '\0'] as const;
// Mostly writers (they create the session and take the lock); `r` needs a stored session.
const MODES = ['rw', 'rw', 'rw', 'w', 'RW', '', 'r', 'r', 'R', 'x', 'r r', 'rw '] as const;
const HTTP_LINES = ['GET / HTTP/1.1', 'POST /session HTTP/1.0', 'PUT /s1 HTTP/1.1', 'OPTIONS * HTTP/1.1'] as const;

/** A fixed or learned id by index, one of the latest ids the server handed out, or an invalid one. */
export type IdPick = { valid: number } | { recent: number } | { invalid: string };

export type Request =
  | { t: 'new' | 'close' | 'commit' | 'destroy' | 'keys' | 'regenerate_id' | 'ping' | 'hello' | 'stats' | 'quit' }
  | { t: 'open'; id: IdPick; mode: string }
  | { t: 'put'; key: string; value: string }
  | { t: 'get' | 'exists' | 'remove'; key: string }
  | { t: 'help'; word: string }
  | { t: 'get_all'; format: string }
  | { t: 'put_all_json'; entries: Array<[string, string | number | boolean | null | object]> }
  | { t: 'put_all_php'; entries: Array<[string | number, string | number | boolean | null]>; cut?: number }
  | { t: 'put_all_raw'; payload: string }
  | { t: 'junk'; bytes: number[] }
  | { t: 'long'; key: string; length: number; filler: string }
  | { t: 'http'; line: string };

export interface Line {
  request: Request;
  /** 0: lower case command word, 1: upper case, 2: capitalized. */
  casing: 0 | 1 | 2;
  /** Whitespace before the line (trimmed by the server). */
  lead: string;
  crlf: boolean;
}

export type Ending = 'keep' | 'drop' | 'half-close';

export interface Step {
  connection: number;
  lines: Line[];
  /** Where the batch's bytes are cut into separate writes (offsets modulo its length). */
  cuts: number[];
  /**
   * Bytes at the end of the last line (its LF included) held back and sent at the start of
   * the connection's next step: a line split across time, while other connections go on.
   */
  holdBack: number;
  ending: Ending;
}

const key = fc.constantFrom(...KEYS);
const value = fc.oneof(
  { weight: 6, arbitrary: fc.array(fc.constantFrom(...VALUE_CHARS), { maxLength: 10 }).map((chars) => chars.join('')) },
  { weight: 1, arbitrary: fc.string({ maxLength: 8 }) },
);
const idPick: fc.Arbitrary<IdPick> = fc.oneof(
  { weight: 6, arbitrary: fc.nat(1).map((valid) => ({ valid })) },
  { weight: 3, arbitrary: fc.nat(FIXED_IDS.length - 1).map((valid) => ({ valid })) },
  { weight: 3, arbitrary: fc.nat(40).map((valid) => ({ valid })) },
  { weight: 3, arbitrary: fc.nat(2).map((recent) => ({ recent })) },
  { weight: 1, arbitrary: fc.constantFrom(...INVALID_IDS).map((invalid) => ({ invalid })) },
);
const jsonValue = fc.oneof(
  { weight: 8, arbitrary: value },
  { weight: 2, arbitrary: fc.oneof(fc.integer({ min: -1000, max: 1000 }), fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e6, max: 1e6 }), fc.boolean()) },
  { weight: 1, arbitrary: fc.constantFrom(null, {}, [1]) },
);
const phpValue = fc.oneof({ weight: 8, arbitrary: value }, { weight: 2, arbitrary: fc.oneof(fc.integer({ min: -1000, max: 1000 }), fc.boolean(), fc.constant(null)) });

/** Random bytes, never an LF (the line terminator) and never a command word the server knows. */
function junk(commandWords: ReadonlySet<string>): fc.Arbitrary<Request> {
  const bytes = fc.oneof(
    fc.uint8Array({ maxLength: 24 }).map((array) => [...array]),
    fc.string({ maxLength: 16 }).map((text) => [...Buffer.from(text)]),
    fc.constantFrom('', ' ', '\t', 'frobnicate', 'PUTX a b', 'get_all_json', 'é', '\0').map((text) => [...Buffer.from(text)]),
  );
  return bytes
    .map((array) => array.map((byte) => (byte === 0x0a ? 0x20 : byte)))
    .filter((array) => !commandWords.has(splitRequest(Buffer.from(array).toString('utf8')).word))
    .map((array) => ({ t: 'junk' as const, bytes: array }));
}

export function requestArbitrary(commandWords: ReadonlySet<string>, maxLineLength: number): fc.Arbitrary<Request> {
  const bare = (t: 'new' | 'close' | 'commit' | 'destroy' | 'keys' | 'regenerate_id' | 'ping' | 'hello' | 'stats' | 'quit') => fc.constant({ t });
  return fc.oneof(
    { weight: 12, arbitrary: fc.record({ t: fc.constant('open' as const), id: idPick, mode: fc.constantFrom(...MODES) }) },
    { weight: 2, arbitrary: bare('new') },
    { weight: 12, arbitrary: fc.record({ t: fc.constant('put' as const), key, value }) },
    { weight: 8, arbitrary: fc.record({ t: fc.constantFrom('get' as const, 'exists' as const, 'remove' as const), key }) },
    { weight: 3, arbitrary: fc.constantFrom('close', 'commit', 'keys', 'keys').map((t) => ({ t }) as Request) },
    { weight: 1, arbitrary: fc.constantFrom('destroy', 'regenerate_id', 'ping', 'hello', 'stats').map((t) => ({ t }) as Request) },
    { weight: 1, arbitrary: bare('quit') },
    { weight: 1, arbitrary: fc.record({ t: fc.constant('help' as const), word: fc.constantFrom('', 'put', 'GET', 'get_all', 'nope') }) },
    { weight: 4, arbitrary: fc.record({ t: fc.constant('get_all' as const), format: fc.constantFrom('', '', 'json', 'JSON', 'xml') }) },
    { weight: 2, arbitrary: fc.record({ t: fc.constant('put_all_json' as const), entries: fc.array(fc.tuple(key, jsonValue), { maxLength: 5 }) }) },
    {
      weight: 2,
      arbitrary: fc.record({
        t: fc.constant('put_all_php' as const),
        entries: fc.array(fc.tuple(fc.oneof(key, fc.nat(3)), phpValue), { maxLength: 5 }),
        cut: fc.option(fc.nat(200), { freq: 4, nil: undefined }),
      }),
    },
    { weight: 1, arbitrary: fc.record({ t: fc.constant('put_all_raw' as const), payload: fc.constantFrom('', 'x', '[1]', '{', '{"a":', 'a', 'a:', '"s"', '{} ') }) },
    { weight: 6, arbitrary: junk(commandWords) },
    {
      weight: 1,
      arbitrary: fc.record({
        t: fc.constant('long' as const),
        key,
        // Multi-byte fillers put the byte limit (and the chunk cuts) inside a character.
        filler: fc.constantFrom('x', 'é', '€', '😀'),
        length: fc.oneof(fc.integer({ min: maxLineLength - 2, max: maxLineLength + 2 }), fc.integer({ min: maxLineLength, max: maxLineLength * 3 })),
      }),
    },
    { weight: 1, arbitrary: fc.record({ t: fc.constant('http' as const), line: fc.constantFrom(...HTTP_LINES) }) },
  );
}

export function programArbitrary(options: {
  commandWords: ReadonlySet<string>;
  maxLineLength: number;
  connections: number;
  endings: readonly Ending[];
  maxSteps: number;
}): fc.Arbitrary<Step[]> {
  const line: fc.Arbitrary<Line> = fc.record({
    request: requestArbitrary(options.commandWords, options.maxLineLength),
    casing: fc.constantFrom(0 as const, 0 as const, 1 as const, 2 as const),
    lead: fc.constantFrom('', '', '', ' ', '\t', ' \0'),
    crlf: fc.boolean(),
  });
  const step: fc.Arbitrary<Step> = fc.record({
    connection: fc.nat(options.connections - 1),
    lines: fc.array(line, { minLength: 1, maxLength: 5 }),
    cuts: fc.array(fc.nat(100_000), { maxLength: 4 }),
    holdBack: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 12 }) }),
    ending: fc.constantFrom(...options.endings),
  });
  return fc.array(step, { minLength: 1, maxLength: options.maxSteps });
}

/** The bytes of one request line, without its LF; session ids are picked from `ids`. */
export function renderLine(line: Line, ids: readonly string[]): Buffer {
  const text = line.lead + renderRequest(line.request, ids, line.casing);
  const bytes = line.request.t === 'junk' ? Buffer.concat([Buffer.from(line.lead), Buffer.from(line.request.bytes)]) : Buffer.from(text);
  return line.crlf ? Buffer.concat([bytes, Buffer.from('\r')]) : bytes;
}

function renderRequest(request: Request, ids: readonly string[], casing: 0 | 1 | 2): string {
  const word = (name: string) => (casing === 1 ? name.toUpperCase() : casing === 2 ? name[0]!.toUpperCase() + name.slice(1) : name);
  switch (request.t) {
    case 'open': {
      const pick = request.id;
      const id = 'invalid' in pick ? pick.invalid : 'valid' in pick ? ids[pick.valid % ids.length]! : ids[Math.max(0, ids.length - 1 - pick.recent)]!;
      return `${word('open')} ${id}${request.mode === '' ? '' : ` ${request.mode}`}`;
    }
    case 'put':
      return `${word('put')} ${request.key} ${request.value}`;
    case 'get':
    case 'exists':
    case 'remove':
      return `${word(request.t)} ${request.key}`;
    case 'help':
      return `${word('help')} ${request.word}`;
    case 'get_all':
      return `${word('get_all')} ${request.format}`;
    case 'put_all_json':
      return `${word('put_all')} {${request.entries.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',')}}`;
    case 'put_all_php': {
      const payload = phpSerialize(request.entries);
      // A cut one makes malformed data (never shorter than `a:`, so it still reads as PHP).
      const cut = request.cut === undefined ? payload.length : 2 + (request.cut % (payload.length - 2));
      return `${word('put_all')} ${payload.slice(0, cut)}`;
    }
    case 'put_all_raw':
      return `${word('put_all')} ${request.payload}`;
    case 'long': {
      const head = `${word('put')} ${request.key} `;
      return head + request.filler.repeat(Math.max(0, Math.ceil((request.length - Buffer.byteLength(head)) / Buffer.byteLength(request.filler))));
    }
    case 'http':
      return request.line;
    case 'junk':
      return '';
    default:
      return word(request.t);
  }
}

/** PHP's serialize() of an array of scalars, written out by hand (string lengths in bytes). */
function phpSerialize(entries: Array<[string | number, string | number | boolean | null]>): string {
  const item = (v: string | number | boolean | null): string => {
    if (typeof v === 'string') return `s:${Buffer.byteLength(v)}:"${v}";`;
    if (typeof v === 'number') return `i:${v};`;
    if (typeof v === 'boolean') return `b:${v ? 1 : 0};`;
    return 'N;';
  };
  return `a:${entries.length}:{${entries.map(([k, v]) => item(k) + item(v)).join('')}}`;
}

/** Cuts `bytes` at the given offsets (taken modulo its length) into the chunks to write. */
export function cutInto(bytes: Buffer, cuts: readonly number[]): Buffer[] {
  const offsets = [...new Set(cuts.map((cut) => cut % (bytes.length + 1)))].filter((at) => at > 0 && at < bytes.length).sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let start = 0;
  for (const at of offsets) {
    chunks.push(bytes.subarray(start, at));
    start = at;
  }
  chunks.push(bytes.subarray(start));
  return chunks;
}
