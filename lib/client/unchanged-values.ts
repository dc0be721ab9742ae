import { decodeSessionValues, encodeSessionValues, setOwn, TYPES_KEY } from './values.js';

/**
 * Encodes a session for saving over what is stored, so that a value this app did not change
 * keeps its stored text and type. Node cannot tell PHP's float `10.0` from `10`, a PHP object
 * (`php`) from its opaque text, or PHP's `[]` from `{}`; re-encoding what it read would turn
 * them into something else. A value whose decoded form equals what was read is written back
 * exactly as it was stored; changed and new values are encoded afresh.
 *
 * `keepStored(key)` names stored keys the session cannot hold (express-session's Session
 * skips keys named like its methods): they are kept as stored instead of being deleted.
 */
export function encodeKeepingUnchanged(
  values: Record<string, unknown>,
  stored: Record<string, string> | null,
  keepStored: (key: string) => boolean = () => false,
): Record<string, string> {
  const fresh = encodeSessionValues(values);
  if (stored === null) return fresh;
  const previous = decodeSessionValues(stored);
  const storedTypes = typesOf(stored);
  const freshTypes = typesOf(fresh);
  const result: Record<string, string> = {};
  const types: Record<string, string> = {};
  const take = (key: string, text: string, type: string | undefined) => {
    setOwn(result, key, text);
    if (type !== undefined) setOwn(types, key, type);
  };
  for (const key of Object.keys(fresh)) {
    if (key === TYPES_KEY) continue;
    if (Object.hasOwn(stored, key) && sameValue(values[key], previous[key])) take(key, stored[key]!, storedTypes.get(key));
    else take(key, fresh[key]!, freshTypes.get(key));
  }
  for (const key of Object.keys(stored)) {
    if (key !== TYPES_KEY && !Object.hasOwn(result, key) && !Object.hasOwn(values, key) && keepStored(key)) {
      take(key, stored[key]!, storedTypes.get(key));
    }
  }
  if (Object.keys(types).length > 0) result[TYPES_KEY] = JSON.stringify(types);
  return result;
}

/** The `:types` entries of stored values, own keys only. */
function typesOf(stored: Record<string, string>): Map<string, string> {
  const types = new Map<string, string>();
  try {
    const parsed = JSON.parse(Object.hasOwn(stored, TYPES_KEY) ? stored[TYPES_KEY]! : '{}') as unknown;
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) {
      for (const [key, type] of Object.entries(parsed)) if (typeof type === 'string') types.set(key, type);
    }
  } catch {
    // Broken :types: every value decodes as a string, and compares as one.
  }
  return types;
}

function sameValue(current: unknown, previous: unknown): boolean {
  return canonical(current) === canonical(previous);
}

function canonical(value: unknown): string | undefined {
  if (typeof value === 'string') return `s${value}`;
  if (Buffer.isBuffer(value)) return `b${value.toString('base64')}`;
  const json = JSON.stringify(value);
  return json === undefined ? undefined : `j${json}`;
}
