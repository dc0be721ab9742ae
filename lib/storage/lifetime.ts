import { CommandError } from '../core/errors.js';

/**
 * The longest own lifetime (`ttl`) a session may have, in seconds: PostgreSQL's `integer`
 * column, about 68 years. Every store accepts 1 to this and refuses the rest alike.
 */
export const MAX_LIFETIME_SECONDS = 2_147_483_647;

/** The same refusal from every store, for the same values. */
export class InvalidLifetimeError extends CommandError {
  override readonly name = 'InvalidLifetimeError';
  constructor() {
    super(`ttl must be a whole number of seconds from 1 to ${MAX_LIFETIME_SECONDS}`, 'E_BAD_REQUEST');
  }
}

/** Refuses a lifetime no store can keep; `null` (back to the max lifetime) is always fine. */
export function checkLifetime(seconds: number | null): void {
  if (seconds === null) return;
  if (!Number.isSafeInteger(seconds) || seconds < 1 || seconds > MAX_LIFETIME_SECONDS) throw new InvalidLifetimeError();
}
