/**
 * The typed-value convention that the express-session store and the PHP handler share,
 * so a Node app and a PHP app read the same values from one session.
 *
 * The server stores strings. A string is stored as it is, so every client (and `get`)
 * sees it unchanged. Any other value is stored as JSON (`42`, `true`, `{"id":7}`), and
 * its key is listed in the reserved key `:types`, itself a JSON object naming each typed
 * key's encoding:
 *
 *   user   → alice                      (a string: no entry in :types)
 *   visits → 3                          :types → {"visits":"json","cart":"json"}
 *   cart   → {"sku":"A1","qty":2}
 *
 * Encodings: `json` (numbers, booleans, null, arrays, plain objects — PHP arrays both
 * ways), `php` (base64 of a PHP serialize()d value that JSON cannot carry, e.g. an object
 * instance: Node sees that text, opaque), `base64` (bytes that are not UTF-8: Node sees a
 * Buffer). A reader that knows nothing of the convention still sees every string
 * value verbatim and numbers as their decimal text.
 */
export const TYPES_KEY = ':types';

export type ValueEncoding = 'json' | 'php' | 'base64';

/** Turns a session object into the strings the server stores (plus `:types` when needed). */
export function encodeSessionValues(values: Record<string, unknown>): Record<string, string> {
  const stored: Record<string, string> = {};
  const types: Record<string, ValueEncoding> = {};
  for (const [key, value] of Object.entries(values)) {
    if (key === TYPES_KEY) throw new TypeError(`"${TYPES_KEY}" is reserved for the value types`);
    if (typeof value === 'string') {
      setOwn(stored, key, value);
    } else if (Buffer.isBuffer(value)) {
      setOwn(stored, key, value.toString('base64'));
      setOwn(types, key, 'base64');
    } else {
      const json = JSON.stringify(value);
      // undefined, functions and symbols have no JSON form: skipped, as JSON.stringify does.
      if (json === undefined) continue;
      setOwn(stored, key, json);
      setOwn(types, key, 'json');
    }
  }
  if (Object.keys(types).length > 0) stored[TYPES_KEY] = JSON.stringify(types);
  return stored;
}

/** Turns stored strings back into values; a value that fails to decode stays a string. */
export function decodeSessionValues(stored: Record<string, string>): Record<string, unknown> {
  const types = parseTypes(stored[TYPES_KEY]);
  const values: Record<string, unknown> = {};
  for (const [key, text] of Object.entries(stored)) {
    if (key === TYPES_KEY) continue;
    setOwn(values, key, decodeValue(text, Object.hasOwn(types, key) ? types[key] : undefined));
  }
  return values;
}

/**
 * A key is data, whatever its name: `obj[key] = v` would set the prototype for `__proto__`,
 * so every key becomes an own property.
 */
export function setOwn<T>(target: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

function decodeValue(text: string, encoding: string | undefined): unknown {
  try {
    if (encoding === 'json') return JSON.parse(text);
    if (encoding === 'base64') return Buffer.from(text, 'base64');
  } catch {
    // Written by something that broke the convention: the raw string beats losing the value.
  }
  return text;
}

function parseTypes(text: string | undefined): Record<string, string> {
  if (text === undefined) return {};
  try {
    const types = JSON.parse(text) as unknown;
    if (typeof types === 'object' && types !== null && !Array.isArray(types)) return types as Record<string, string>;
  } catch {
    // fall through
  }
  return {};
}
