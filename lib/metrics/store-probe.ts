import type { SessionStore } from '../storage/contract.js';

/** A valid session id that no server generates (those are 32 hex digits): loading it reads nothing. */
const PROBE_ID = 'sessionserver-health-probe';
/** A read unanswered this long is given up on, so a store that lost one call is probed afresh. */
const ABANDON_AFTER_MS = 30_000;

/**
 * A health check of the store: resolves true when a cheap read (loading an id that does
 * not exist: one key lookup, one indexed row, one missing file) answers within
 * `timeoutMs`, false on an error or when it does not. At most one read is in flight: a
 * store that hangs is not sent one more read per health request.
 */
export function storeProbe(store: SessionStore, timeoutMs: number): () => Promise<boolean> {
  let inFlight: { readonly answer: Promise<boolean>; readonly since: number } | null = null;
  return () => {
    if (inFlight === null || Date.now() - inFlight.since > ABANDON_AFTER_MS) {
      const probe = {
        since: Date.now(),
        answer: Promise.resolve()
          .then(() => store.load(PROBE_ID))
          .then(
            () => true,
            () => false,
          )
          .finally(() => {
            if (inFlight === probe) inFlight = null;
          }),
      };
      inFlight = probe;
    }
    return withinTime(inFlight.answer, timeoutMs);
  };
}

function withinTime(answer: Promise<boolean>, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    void answer.then((healthy) => {
      clearTimeout(timer);
      resolve(healthy);
    });
  });
}
