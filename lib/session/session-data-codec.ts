import { serialize } from 'php-serialize';
import { CommandError } from '../core/errors.js';

/** `get_all`'s classic form: a PHP-serialize()d array, string lengths in bytes, in insertion order. */
export function toPhpSerialized(entries: Iterable<[string, string]>): string {
  // A Map, not an object: php-serialize takes an object with a key named `constructor` for a class instance.
  return serialize(new Map(entries));
}

export function toJson(entries: Iterable<[string, string]>): string {
  // Object.fromEntries defines own properties, `__proto__` included; JSON.stringify writes them all.
  return JSON.stringify(Object.fromEntries(entries));
}

/**
 * `put_all`'s payload: a JSON object (starts with `{`) or a PHP-serialized array (starts
 * with `a:`). Values must be scalars; they are stored as strings, as PHP would cast them.
 */
export function parseSessionPayload(payload: string): Array<[string, string]> {
  if (payload.startsWith('{')) return fromJson(payload);
  if (payload.startsWith('a:')) return fromPhpSerialized(payload);
  throw new CommandError('put_all needs a PHP-serialized array (a:...) or a JSON object ({...})');
}

function fromJson(payload: string): Array<[string, string]> {
  let parsed: unknown;
  try {
    // JSON.parse makes every key an own property, `__proto__` too: Object.entries sees them all.
    parsed = JSON.parse(payload);
  } catch {
    // Not the parser's message: V8 quotes a piece of the input, which is session data.
    throw new CommandError('put_all: invalid JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new CommandError('put_all: JSON payload must be an object');
  }
  return Object.entries(parsed).map(([key, value]) => {
    if (typeof value === 'string') return [key, value];
    if (typeof value === 'number' || typeof value === 'boolean') return [key, String(value)];
    throw new CommandError(`put_all: value of "${key}" must be a string, number or boolean`);
  });
}

/**
 * A PHP-serialized array of scalars, read straight into pairs. php-serialize's unserialize
 * cannot be used here: it assigns keys onto a plain object, where a key named `__proto__`
 * is lost (or replaces the object's prototype). The grammar is small: `a:<n>:{` then n keys
 * (`i:<int>;` or `s:<bytes>:"…";`) each with a value (`s:`, `i:`, `d:`, `b:` or `N;`), then `}`.
 * No object is ever revived: `O:` and `C:` are refused.
 */
function fromPhpSerialized(payload: string): Array<[string, string]> {
  const reader = new PhpArrayReader(Buffer.from(payload, 'utf8'));
  const pairs = reader.readArray();
  reader.end();
  return pairs;
}

const PHP_INT = /^[+-]?\d+$/;
const PHP_FLOAT = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;
// PHP's own string casts of the float values that have no digits.
const PHP_FLOAT_WORDS: Record<string, string> = { INF: 'INF', '-INF': '-INF', NAN: 'NAN' };

class PhpArrayReader {
  private at = 0;

  constructor(private readonly bytes: Buffer) {}

  readArray(): Array<[string, string]> {
    this.expect('a:');
    const count = Number(this.until(':', /^\d+$/));
    this.expect('{');
    const values = new Map<string, string>();
    for (let i = 0; i < count; i++) {
      const key = this.readKey();
      // As a PHP array: a repeated key keeps its first position and takes the last value.
      values.set(key, this.readValue(key));
    }
    this.expect('}');
    return [...values];
  }

  end(): void {
    if (this.at !== this.bytes.length) this.fail();
  }

  private readKey(): string {
    const type = this.take(2);
    if (type === 'i:') return String(BigInt(this.until(';', PHP_INT)));
    if (type === 's:') return this.readString();
    return this.fail();
  }

  private readValue(key: string): string {
    const type = this.take(2);
    switch (type) {
      case 's:':
        return this.readString();
      case 'i:':
        return String(BigInt(this.until(';', PHP_INT)));
      case 'd:': {
        const text = this.until(';', /^[^;]*$/);
        if (PHP_FLOAT_WORDS[text] !== undefined) return PHP_FLOAT_WORDS[text];
        if (!PHP_FLOAT.test(text)) return this.fail();
        return String(Number(text));
      }
      case 'b:': {
        const flag = this.until(';', /^[01]$/);
        return flag === '1' ? '1' : '';
      }
      case 'N;':
        return '';
      case 'a:':
        throw new CommandError(`put_all: value of "${key}" must be a scalar`);
      default:
        return this.fail();
    }
  }

  /** `<byte length>:"<bytes>";` after its `s:`. */
  private readString(): string {
    const length = Number(this.until(':', /^\d+$/));
    this.expect('"');
    const start = this.at;
    if (start + length > this.bytes.length) this.fail();
    this.at += length;
    this.expect('";');
    return this.bytes.toString('utf8', start, start + length);
  }

  /** The ASCII text up to `stop` (consumed), which must match `shape`. */
  private until(stop: string, shape: RegExp): string {
    const end = this.bytes.indexOf(stop, this.at, 'latin1');
    if (end === -1 || end - this.at > 40) this.fail();
    const text = this.bytes.toString('latin1', this.at, end);
    if (!shape.test(text)) this.fail();
    this.at = end + 1;
    return text;
  }

  private take(length: number): string {
    const text = this.bytes.toString('latin1', this.at, this.at + length);
    this.at += length;
    return text;
  }

  private expect(text: string): void {
    const start = this.at;
    if (this.take(text.length) !== text) {
      this.at = start;
      this.fail();
    }
  }

  private fail(): never {
    throw new CommandError(`put_all: invalid PHP-serialized data (syntax error at byte ${this.at})`);
  }
}
