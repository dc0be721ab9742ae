/**
 * A model of the session protocol (PROTOCOL.md) for the fuzz test: plain Maps for the stored
 * sessions and per-connection state, and for every request line the reply the server must
 * give. It reads PROTOCOL.md, not the server's code: the framing rules, the reply texts and
 * the session semantics are written out here a second time so the two can disagree.
 */

export type Mode = 'r' | 'w' | 'rw';
type Values = Map<string, string>;

interface HeldSession {
  id: string;
  mode: Mode;
  /** What this connection sees: the stored values when it opened, plus its own changes. */
  values: Values;
}

interface ModelConnection {
  session: HeldSession | null;
  /** Lines that reached the dispatcher (a too-long line does not). */
  dispatched: number;
  unknownStreak: number;
}

/** What one line must be answered with, and what it changes once the reply agrees. */
export interface Expectation {
  /** Throws an Error naming the disagreement; otherwise applies the line's effect. */
  settle(reply: string): void;
  /** The server closes the connection after this reply (quit, HTTP line, too many unknown). */
  closes: boolean;
}

export interface ModelLimits {
  maxLineLength: number;
  maxUnknownCommands: number;
  /** Every command word the server routes; the rest must be `err unknown command`. */
  commandWords: ReadonlySet<string>;
  storageName: string;
}

const SESSION_ID = /^[A-Za-z0-9,_-]{1,128}$/;
const NEW_SESSION_ID = /^[0-9a-f]{32}$/;
const HTTP_REQUEST_LINE = /^[A-Z]+ \S+ HTTP\/\d(\.\d)?$/;
const MODES: Record<string, Mode> = { '': 'rw', r: 'r', w: 'w', rw: 'rw' };
// PHP's trim() set: space, tab, LF, CR, NUL, vertical tab.
const TRIM = /^[ \t\n\r\0\x0b]+|[ \t\n\r\0\x0b]+$/g;

/** Failure texts of commands refused by their guard (session opened read-only). */
const READ_ONLY_FAILURE: Record<string, string> = {
  destroy: 'Could not destroy session.',
  put: 'Could not store value',
  remove: 'Could not remove value',
  regenerate_id: 'Could not regenerate session id.',
  put_all: 'Could not store values.',
};
const NEEDS_READ = new Set(['close', 'commit', 'get', 'exists', 'keys', 'get_all']);

/** A request split as the classic protocol splits it: word, first argument, rest of the line. */
export function splitRequest(text: string): { word: string; arg1: string; arg2: string; rest: string } {
  const line = text.replace(TRIM, '');
  const first = line.indexOf(' ');
  if (first === -1) return { word: line.toLowerCase(), arg1: '', arg2: '', rest: '' };
  const second = line.indexOf(' ', first + 1);
  const word = line.slice(0, first).toLowerCase();
  const rest = line.slice(first + 1);
  if (second === -1) return { word, arg1: rest, arg2: '', rest };
  return { word, arg1: line.slice(first + 1, second), arg2: line.slice(second + 1), rest };
}

export class ProtocolModel {
  /** The stored sessions: what a reader opening one sees. */
  readonly store = new Map<string, Values>();
  /** Session ids the generator may refer to: fixed ones plus every id the server handed out. */
  readonly ids: string[];
  private readonly connections = new Map<number, ModelConnection>();
  private nextConnection = 0;

  constructor(
    private readonly limits: ModelLimits,
    fixedIds: readonly string[],
  ) {
    this.ids = [...fixedIds];
  }

  connect(): number {
    const id = this.nextConnection++;
    this.connections.set(id, { session: null, dispatched: 0, unknownStreak: 0 });
    return id;
  }

  /** The client went away (or was closed): a writer's changes are kept, as PHP writes at request end. */
  disconnect(connectionId: number): void {
    const connection = this.connection(connectionId);
    this.release(connection);
    this.connections.delete(connectionId);
  }

  /** Distinct session ids held open by live connections (`sessions_held` in stats). */
  heldIds(): Set<string> {
    const held = new Set<string>();
    for (const { session } of this.connections.values()) if (session) held.add(session.id);
    return held;
  }

  /** The expected answer to one request line (its bytes without the LF). */
  expect(connectionId: number, line: Buffer): Expectation {
    const connection = this.connection(connectionId);
    const { maxLineLength, maxUnknownCommands, commandWords } = this.limits;
    if (line.length > maxLineLength) return exact(`err Line too long (limit ${maxLineLength} bytes)`);
    const text = line.toString('utf8');
    if (connection.dispatched++ === 0 && HTTP_REQUEST_LINE.test(text.replace(TRIM, ''))) {
      return exact('err HTTP requests are not accepted on this port', undefined, true);
    }
    const request = splitRequest(text);
    if (!commandWords.has(request.word)) {
      if (++connection.unknownStreak >= maxUnknownCommands) return exact('err Too many unknown commands', undefined, true);
      return exact('err unknown command');
    }
    connection.unknownStreak = 0;
    return this.command(connection, request);
  }

  private command(connection: ModelConnection, request: ReturnType<typeof splitRequest>): Expectation {
    const { word, arg1, arg2, rest } = request;
    const session = connection.session;
    if (NEEDS_READ.has(word) || word in READ_ONLY_FAILURE) {
      if (!session) return exact('err No session opened.');
      const failure = READ_ONLY_FAILURE[word];
      if (failure !== undefined && session.mode === 'r') return exact(`err ${failure}`);
    }
    switch (word) {
      case 'ping':
        return exact('ok pong');
      case 'quit':
        return exact('ok', undefined, true);
      case 'hello':
        return matching(/^ok sessionserver \S+ protocol=\d+ /, 'hello line');
      case 'help':
        if (arg1 === '') return matching(/^ok .*put <key> <value>/, 'command list');
        if (!this.limits.commandWords.has(arg1.toLowerCase())) return exact('err unknown command');
        return matching(new RegExp(`^ok ${escapeRegExp(arg1.toLowerCase())}\\b`), `usage of ${arg1}`);
      case 'stats':
        return this.stats();
      case 'new':
        return this.create(connection);
      case 'open':
        return this.open(connection, arg1, arg2);
      case 'close':
        return exact('ok', () => this.release(connection));
      case 'commit':
        return exact('ok', () => {
          this.save(session!);
          session!.mode = 'r';
        });
      case 'destroy':
        return exact('ok', () => {
          this.store.delete(session!.id);
          connection.session = null;
        });
      case 'put':
        return exact('ok', () => session!.values.set(arg1, arg2));
      case 'get': {
        const value = session!.values.get(arg1);
        return exact(value === undefined ? 'err Key does not exist' : okReply(value));
      }
      case 'exists':
        return exact(session!.values.has(arg1) ? 'ok' : 'err Key does not exist');
      case 'remove':
        if (!session!.values.has(arg1)) return exact('err Key does not exist');
        return exact('ok', () => session!.values.delete(arg1));
      case 'keys':
        return keysReply([...session!.values.keys()]);
      case 'regenerate_id':
        return this.regenerate(session!);
      case 'get_all':
        return getAllReply(session!.values, arg1);
      case 'put_all':
        return this.putAll(session!, rest);
      default:
        throw new Error(`the model has no rule for the command word ${JSON.stringify(word)}: the generator must not send it`);
    }
  }

  private create(connection: ModelConnection): Expectation {
    return {
      closes: false,
      settle: (reply) => {
        if (!reply.startsWith('ok ') || !NEW_SESSION_ID.test(reply.slice(3))) throw mismatch('ok <32 hex digits>', reply);
        const id = reply.slice(3);
        if (this.store.has(id) || this.heldIds().has(id)) throw new Error(`new handed out an id in use: ${id}`);
        this.release(connection);
        connection.session = { id, mode: 'rw', values: new Map() };
        this.ids.push(id);
      },
    };
  }

  private open(connection: ModelConnection, id: string, modeName: string): Expectation {
    const mode = MODES[modeName.toLowerCase()];
    // Refused before anything happens: the session held so far stays open.
    if (mode === undefined || !SESSION_ID.test(id)) return exact('err Could not open session.');
    // Every valid open first closes what the connection holds (writing it), whatever comes next.
    const own = connection.session;
    const stored = own && own.id === id && own.mode !== 'r' ? own.values : this.store.get(id);
    if (mode !== 'r' && this.heldForWriting(id, connection)) return exact('err Session is locked', () => this.release(connection));
    if (mode === 'r' && stored === undefined) return exact('err Could not open session.', () => this.release(connection));
    return exact('ok', () => {
      this.release(connection);
      connection.session = { id, mode, values: new Map(this.store.get(id)) };
    });
  }

  private regenerate(session: HeldSession): Expectation {
    return {
      closes: false,
      settle: (reply) => {
        if (!reply.startsWith('ok ') || !NEW_SESSION_ID.test(reply.slice(3))) throw mismatch('ok <32 hex digits>', reply);
        const id = reply.slice(3);
        if (this.store.has(id) || this.heldIds().has(id)) throw new Error(`regenerate_id handed out an id in use: ${id}`);
        this.store.delete(session.id);
        session.id = id;
        this.save(session);
        this.ids.push(id);
      },
    };
  }

  private putAll(session: HeldSession, payload: string): Expectation {
    let parsed: Values | { error: string; prefix?: boolean };
    if (payload.startsWith('{')) parsed = parseJsonPayload(payload);
    else if (payload.startsWith('a:')) parsed = parsePhpPayload(payload);
    else parsed = { error: 'put_all needs a PHP-serialized array (a:...) or a JSON object ({...})' };
    if (!(parsed instanceof Map)) {
      const text = `err ${oneLine(parsed.error)}`;
      return parsed.prefix ? matching(new RegExp(`^${escapeRegExp(text)}`), `${text}…`) : exact(text);
    }
    return exact('ok', () => {
      session.values = parsed;
    });
  }

  private stats(): Expectation {
    return {
      closes: false,
      settle: (reply) => {
        if (!reply.startsWith('ok ')) throw mismatch('ok <counters>', reply);
        const fields = new Map(reply.slice(3).split(' ').map((pair) => pair.split('=') as [string, string]));
        const expected = { storage: this.limits.storageName, sessions: String(this.store.size), sessions_held: String(this.heldIds().size) };
        for (const [name, value] of Object.entries(expected)) {
          if (fields.get(name) !== value) throw mismatch(`${name}=${value}`, reply);
        }
      },
    };
  }

  private heldForWriting(id: string, except: ModelConnection): boolean {
    for (const connection of this.connections.values()) {
      if (connection !== except && connection.session?.id === id && connection.session.mode !== 'r') return true;
    }
    return false;
  }

  /** Closes the connection's session: a writer's values are stored. */
  private release(connection: ModelConnection): void {
    if (connection.session) this.save(connection.session);
    connection.session = null;
  }

  private save(session: HeldSession): void {
    if (session.mode !== 'r') this.store.set(session.id, new Map(session.values));
  }

  private connection(id: number): ModelConnection {
    const connection = this.connections.get(id);
    if (!connection) throw new Error(`model connection ${id} is not open`);
    return connection;
  }
}

// ---- Expected replies ----

function exact(reply: string, apply?: () => void, closes = false): Expectation {
  return {
    closes,
    settle(actual) {
      if (actual !== reply) throw mismatch(reply, actual);
      apply?.();
    },
  };
}

function matching(pattern: RegExp, what: string): Expectation {
  return {
    closes: false,
    settle(actual) {
      if (!pattern.test(actual)) throw mismatch(what, actual);
    },
  };
}

/** `ok <payload>`, or the refusal a classic client gets for a payload that cannot go on one line. */
function okReply(payload: string): string {
  if (/[\r\n]/.test(payload)) return 'err Value cannot be sent on one line';
  return payload === '' ? 'ok' : `ok ${payload}`;
}

/** `keys`: the same keys in any order (a key holding `|` is compared piece by piece). */
function keysReply(keys: string[]): Expectation {
  const joined = okReply(keys.join('|'));
  if (!joined.startsWith('ok')) return exact(joined);
  const expected = keys.join('|').split('|').sort();
  return {
    closes: false,
    settle(actual) {
      if (actual !== 'ok' && !actual.startsWith('ok ')) throw mismatch(joined, actual);
      const got = actual.slice(3).split('|').sort();
      if (got.length !== expected.length || got.some((key, i) => key !== expected[i])) throw mismatch(`${joined} (any order)`, actual);
    },
  };
}

function getAllReply(values: Values, format: string): Expectation {
  const what = `the values ${JSON.stringify(Object.fromEntries(values))}`;
  if (format.toLowerCase() === 'json') {
    return {
      closes: false,
      settle(actual) {
        if (!actual.startsWith('ok ')) throw mismatch(`ok <json of ${what}>`, actual);
        let parsed: unknown;
        try {
          parsed = JSON.parse(actual.slice(3));
        } catch {
          throw mismatch(`ok <json of ${what}>`, actual);
        }
        if (!sameValues(values, Object.entries(parsed as object))) throw mismatch(`ok <json of ${what}>`, actual);
      },
    };
  }
  if (format !== '') return exact('err get_all takes no argument or json');
  for (const [key, value] of values) if (/[\r\n]/.test(key + value)) return exact('err Value cannot be sent on one line');
  return {
    closes: false,
    settle(actual) {
      const expected = `ok <php-serialized ${what}>`;
      if (!actual.startsWith('ok ')) throw mismatch(expected, actual);
      const parsed = parsePhpPayload(actual.slice(3));
      if (!(parsed instanceof Map) || !sameValues(values, parsed)) throw mismatch(expected, actual);
    },
  };
}

function sameValues(expected: Values, entries: Iterable<[string, unknown]>): boolean {
  const actual = [...entries];
  if (actual.length !== expected.size) return false;
  return actual.every(([key, value]) => expected.has(key) && expected.get(key) === value);
}

// ---- put_all payloads, as PROTOCOL.md describes them ----

function parseJsonPayload(payload: string): Values | { error: string } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(payload);
  } catch {
    return { error: 'put_all: invalid JSON' };
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return { error: 'put_all: JSON payload must be an object' };
  const values: Values = new Map();
  for (const [key, value] of Object.entries(parsed)) {
    if (typeof value === 'string') values.set(key, value);
    else if (typeof value === 'number' || typeof value === 'boolean') values.set(key, String(value));
    else return { error: `put_all: value of "${key}" must be a string, number or boolean` };
  }
  return values;
}

/**
 * A PHP `serialize()`d array of scalars (string lengths in bytes), as PHP reads it: a later
 * duplicate key wins, `b:1` is "1", `b:0` and `N` are "". Anything else is refused.
 */
export function parsePhpPayload(payload: string): Values | { error: string; prefix: true } {
  const bytes = Buffer.from(payload, 'utf8');
  let at = 0;
  const fail = (): never => {
    throw new SyntaxError('bad');
  };
  const expect = (text: string) => {
    if (bytes.toString('latin1', at, at + text.length) !== text) fail();
    at += text.length;
  };
  const until = (end: string): string => {
    const stop = bytes.indexOf(end, at);
    if (stop === -1) fail();
    const text = bytes.toString('utf8', at, stop);
    at = stop + 1;
    return text;
  };
  const scalar = (): string => {
    const type = bytes.toString('latin1', at, at + 2);
    at += 2;
    if (type === 's:') {
      const length = Number(until(':'));
      if (!Number.isInteger(length) || length < 0) fail();
      expect('"');
      const text = bytes.toString('utf8', at, at + length);
      at += length;
      expect('"');
      return text;
    }
    if (type === 'i:' || type === 'd:') return String(Number(until(';')));
    if (type === 'b:') return until(';') === '1' ? '1' : '';
    if (type === 'N;') return '';
    // Nested arrays and objects are refused too; the generator sends only scalars.
    return fail();
  };
  try {
    expect('a:');
    const count = Number(until(':'));
    expect('{');
    const values: Values = new Map();
    for (let i = 0; i < count; i++) {
      const key = scalar();
      if (bytes[at] === 0x3b) at++;
      const value = scalar();
      if (bytes[at] === 0x3b) at++;
      values.set(key, value);
    }
    expect('}');
    if (at !== bytes.length) fail();
    return values;
  } catch {
    return { error: 'put_all: invalid PHP-serialized data (', prefix: true };
  }
}

function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, ' ');
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function mismatch(expected: string, actual: string): Error {
  return new Error(`expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
}
