import { Connection } from '../core/connection.js';
import { CommandError } from '../core/errors.js';
import type { OpenSession } from './open-session.js';

/** A session server's client: the line core's connection plus the session it holds open. */
export class SessionConnection extends Connection {
  /** The session this connection holds open, if any. */
  session: OpenSession | null = null;

  /**
   * The open session, for handlers of commands declared `session: 'read' | 'write'`: the
   * guard has already refused the command when there is none, so this never throws there.
   */
  get openSession(): OpenSession {
    const session = this.session;
    if (session === null) throw CommandError.of('E_NO_SESSION');
    return session;
  }
}
