import { serialize, unserialize } from 'php-serialize';
import { CommandError } from '../core/errors.js';

/** `get_all`'s classic form: a PHP-serialize()d array, string lengths in bytes. */
export function toPhpSerialized(entries: Iterable<[string, string]>): string {
  return serialize(Object.fromEntries(entries));
}

export function toJson(entries: Iterable<[string, string]>): string {
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

function fromPhpSerialized(payload: string): Array<[string, string]> {
  let parsed: unknown;
  try {
    // No class may be instantiated from client input: objects are refused, not revived.
    parsed = unserialize(payload, {}, { strict: true });
  } catch (error) {
    throw new CommandError(`put_all: invalid PHP-serialized data (${(error as Error).message})`);
  }
  if (typeof parsed !== 'object' || parsed === null) {
    throw new CommandError('put_all: PHP payload must be an array');
  }
  return Object.entries(parsed).map(([key, value]) => [key, phpScalarToString(key, value)]);
}

// PHP's own string casts: true is "1", false and null are "".
function phpScalarToString(key: string, value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number') return String(value);
  if (value === true) return '1';
  if (value === false || value === null) return '';
  throw new CommandError(`put_all: value of "${key}" must be a scalar`);
}
