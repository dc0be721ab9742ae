import { FailureThrottle, type FailureThrottleOptions } from './failure-throttle.js';
import { VerificationQueue, type VerificationQueueOptions } from './verification-queue.js';

/**
 * What a connection logged in with: enough to find its principal again in a reloaded
 * configuration, never the secret itself.
 */
export type Credential =
  /** A configured token, by the SHA-256 of the token. */
  | { kind: 'token'; digest: string }
  /** A configured user, with the password hash the password was checked against: a changed password logs the user out. */
  | { kind: 'user'; name: string; hash: string }
  /** A verified client certificate (mutual TLS) whose subject CN is listed in `certificates`. */
  | { kind: 'certificate'; commonName: string }
  /** Another plugin's `authenticate` tap vouched for this user name. */
  | { kind: 'external'; user: string };

/** Auth state of one server: outlives reloads of the auth plugin, which start from a fresh module copy. */
export interface AuthState {
  credentials: WeakMap<object, Credential>;
  throttle: FailureThrottle;
  verifications: VerificationQueue;
}

// A registered symbol: every copy of this module (a reload imports the plugin and its imports afresh) finds the same state.
const STATE = Symbol.for('sessionserver.auth.state');

/** The server's auth state, made on first use and re-configured by each (re)apply. */
export function authStateOf(server: object, limits: FailureThrottleOptions & VerificationQueueOptions): AuthState {
  const holder = server as { [STATE]?: AuthState };
  const state = holder[STATE];
  if (state) {
    state.throttle.configure(limits);
    state.verifications.configure(limits);
    return state;
  }
  const fresh: AuthState = { credentials: new WeakMap(), throttle: new FailureThrottle(limits), verifications: new VerificationQueue(limits) };
  Object.defineProperty(server, STATE, { value: fresh, enumerable: false });
  return fresh;
}
