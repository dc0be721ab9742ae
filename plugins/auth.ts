/**
 * auth — clients must `auth <token>` or `auth <user> <password>` before anything but
 * `auth hello ping quit help`. Per-principal command allow-lists and a read-only role.
 *
 *   plugins: [['auth', { tokens: ['…'], users: { alice: { password: 'scrypt$…', readOnly: true } } }]]
 *
 * Hash passwords with `sessionserver hash-password`. Secrets are compared in constant time
 * and never logged; failed attempts slow down, then close the connection.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { authenticateHook } from '../lib/auth/hooks.js';
import { hashPassword, isPasswordHash, verifyPassword } from '../lib/auth/password.js';
import { accessOf, type CommandEntry } from '../lib/core/command.js';
import type { Connection } from '../lib/core/connection.js';
import { CommandError } from '../lib/core/errors.js';
import type { LineServer } from '../lib/core/line-server.js';
import { definePlugin } from '../lib/core/plugin-host.js';
import type { Request } from '../lib/protocol/request.js';

interface Grants {
  /** Commands this principal may run (besides the public ones); all when omitted. */
  commands?: string[];
  /** May only read: `open … r`, no `new`, no writes, no `gc`. */
  readOnly?: boolean;
}

export interface AuthOptions {
  tokens?: Array<string | ({ token: string; user?: string } & Grants)>;
  users?: Record<string, { password: string } & Grants>;
  /** Failed attempts on one connection before it is closed. Default 5. */
  maxFailures?: number;
  /** Delay before answering the first failure, doubled for each further one (max 5 s). Default 250 ms. */
  failureDelayMs?: number;
}

interface Principal {
  user: string;
  commands: Set<string> | null;
  readOnly: boolean;
}

const PUBLIC_COMMANDS = new Set(['auth', 'hello', 'ping', 'quit', 'help']);
const MAX_DELAY_MS = 5000;

const digest = (text: string) => createHash('sha256').update(text).digest();

function grantsOf(user: string, grants: Grants): Principal {
  return { user, commands: grants.commands ? new Set(grants.commands.map((c) => c.toLowerCase())) : null, readOnly: grants.readOnly === true };
}

export default definePlugin<AuthOptions, LineServer>({
  name: 'auth',
  apply(server, options = {}, plugin) {
    const tokens = (options.tokens ?? []).map((entry) => (typeof entry === 'string' ? { token: entry } : entry));
    const users = options.users ?? {};
    if (tokens.length === 0 && Object.keys(users).length === 0) throw new Error('auth plugin: configure at least one token or user');
    for (const [name, user] of Object.entries(users)) {
      if (!isPasswordHash(user.password)) throw new Error(`auth plugin: user "${name}" needs a password hash (sessionserver hash-password)`);
    }
    const tokenDigests = tokens.map((entry) => ({ digest: digest(entry.token), principal: grantsOf(entry.user ?? 'token', entry) }));
    const principals = new Map(Object.entries(users).map(([name, user]) => [name, grantsOf(name, user)]));
    const maxFailures = options.maxFailures ?? 5;
    const failureDelayMs = options.failureDelayMs ?? 250;
    const authenticated = new WeakMap<Connection, Principal>();
    const failures = new WeakMap<Connection, number>();
    // Unknown users cost a full scrypt too, so timing does not tell which names exist.
    const decoyHash = hashPassword('decoy password');

    const authenticate = authenticateHook(server);
    plugin.tapPromise(authenticate, async (_ctx, first, rest) => {
      if (rest === '') {
        const given = digest(first);
        let match: Principal | undefined;
        // Compare against every token, without stopping early.
        for (const entry of tokenDigests) if (timingSafeEqual(given, entry.digest) && !match) match = entry.principal;
        return match?.user === undefined ? undefined : `token:${match.user}`;
      }
      const user = users[first];
      const ok = await verifyPassword(rest, user ? user.password : await decoyHash);
      return ok && user ? `user:${first}` : undefined;
    });

    plugin.addCommand(
      {
        name: 'auth',
        access: 'read',
        usage: 'auth <token> | auth <user> <password>',
        summary: 'authenticate this connection',
        failure: 'Authentication failed',
        async run(ctx, first, rest) {
          const result = first === '' ? undefined : await authenticate.promise(ctx, first, rest);
          const principal = result === undefined ? undefined : principalOf(result);
          if (principal) {
            authenticated.set(ctx, principal);
            failures.delete(ctx);
            ctx.user = principal.user;
            return;
          }
          const count = (failures.get(ctx) ?? 0) + 1;
          failures.set(ctx, count);
          ctx.log.warn({ connection: ctx.id, remote: ctx.remoteAddress, failures: count }, 'authentication failed');
          await new Promise((resolve) => setTimeout(resolve, Math.min(failureDelayMs * 2 ** (count - 1), MAX_DELAY_MS)));
          if (count >= maxFailures) {
            ctx.end();
            throw new CommandError('Too many failed attempts');
          }
          throw new CommandError('Authentication failed');
        },
      },
    );

    function principalOf(result: string): Principal | undefined {
      if (result.startsWith('token:')) return tokenDigests.find((entry) => `token:${entry.principal.user}` === result)?.principal;
      if (result.startsWith('user:')) return principals.get(result.slice(5));
      // Another plugin's authenticate tap vouched for this user: no grants configured here.
      return { user: result, commands: null, readOnly: false };
    }

    plugin.tap(server.hooks.beforeCommand, (ctx: Connection, entry: CommandEntry, request: Request) => {
      if (PUBLIC_COMMANDS.has(entry.name)) return undefined;
      const principal = authenticated.get(ctx);
      if (!principal) return 'Authentication required';
      if (principal.commands && !principal.commands.has(entry.name)) return 'Command not allowed';
      if (principal.readOnly && accessOf(entry, request.arg1, request.arg2) === 'write') return 'Read-only user';
      return undefined;
    });
  },
});
