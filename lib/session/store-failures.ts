import { isCommandError } from '../core/errors.js';
import type { SessionStore } from '../storage/contract.js';

/**
 * A failure of the storage itself (an outage, a timeout, an I/O error), as opposed to a
 * refusal the client caused (a CommandError such as `Session too large`), which is no
 * storage fault. `Storage unavailable` is a CommandError too, and counts.
 */
export function isStorageFailure(error: unknown): boolean {
  return !isCommandError(error) || error.code === 'E_STORAGE_UNAVAILABLE';
}

/**
 * The store as the server uses it: the same object (its own properties, `instanceof`, a
 * driver's extras), except that each operation that fails is reported to `onFailure`,
 * wherever it was called from: commands, the release of a vanished client's session, gc
 * sweeps, `stats`. Its lock manager (`locks`) is watched the same way. Reporting happens
 * once per call the server makes; what a store does inside its own methods is not seen twice.
 */
export function reportingStoreFailures<S extends SessionStore>(store: S, onFailure: (error: Error) => void): S {
  return reporting(store, onFailure, true);
}

function reporting<T extends object>(target: T, onFailure: (error: Error) => void, withLocks: boolean): T {
  const report = (error: unknown): void => {
    if (isStorageFailure(error)) onFailure(error instanceof Error ? error : new Error(String(error)));
  };
  // One handler for every call's promise (none made per call).
  const reportAndRethrow = (error: unknown): never => {
    report(error);
    throw error;
  };
  const wrappers = new Map<PropertyKey, { method: Function; wrapper: Function }>();
  let locks: object | undefined;
  return new Proxy(target, {
    get(object, property) {
      // The target itself as `this`: drivers with #private fields work unchanged.
      const value: unknown = Reflect.get(object, property, object);
      if (withLocks && property === 'locks' && typeof value === 'object' && value !== null) {
        return (locks ??= reporting(value, onFailure, false));
      }
      if (typeof value !== 'function') return value;
      const known = wrappers.get(property);
      if (known?.method === value) return known.wrapper;
      const method = value as (...args: unknown[]) => unknown;
      const wrapper = function (...args: unknown[]): unknown {
        let result: unknown;
        try {
          result = method.apply(object, args);
        } catch (error) {
          report(error);
          throw error;
        }
        if (result instanceof Promise) return result.catch(reportAndRethrow);
        return result;
      };
      wrappers.set(property, { method, wrapper });
      return wrapper;
    },
  });
}
