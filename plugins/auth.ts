/**
 * auth — clients must `auth <token>` or `auth <user> <password>` before anything but
 * `auth hello ping quit help`. Every token and every user is its own principal, with its
 * own command allow-list and read-only flag. Under mutual TLS, a client certificate whose
 * subject CN is listed in `certificates` logs its connection in without `auth`.
 *
 *   plugins: [['auth', { tokens: ['…'], users: { alice: { password: 'scrypt$…', readOnly: true } } }]]
 *   plugins: [['auth', { certificates: { 'app-1': {}, 'report-job': { readOnly: true } } }]]   (needs tls.ca)
 *
 * Hash passwords with `sessionserver hash-password`. Secrets are compared in constant time
 * and never logged. Failed attempts are counted per client address across connections:
 * each slows the next reply down, then the address is refused for a while. Password checks
 * run a few at a time, so a burst of them cannot starve other clients.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { authStateOf, type Credential } from '../lib/auth/auth-state.js';
import { clientAddressKey } from '../lib/auth/client-address.js';
import { authenticateHook } from '../lib/auth/hooks.js';
import { hashPassword, isPasswordHash, verifyPassword } from '../lib/auth/password.js';
import { accessOf, type CommandEntry } from '../lib/core/command.js';
import type { Connection } from '../lib/core/connection.js';
import { CommandError, isCommandError } from '../lib/core/errors.js';
import type { LineServer } from '../lib/core/line-server.js';
import { peerCertificateCommonName } from '../lib/core/listener.js';
import { definePlugin } from '../lib/core/plugin-host.js';
import { replyText } from '../lib/protocol/replies.js';
import type { Request } from '../lib/protocol/request.js';

interface Grants {
  /** Commands this principal may run (besides the public ones); all when omitted. */
  commands?: string[];
  /** May only run commands declared `access: 'read'` (`open … r`, `get`, `ttl` alone…). */
  readOnly?: boolean;
}

export interface AuthOptions {
  /** A token alone, or with a `user` name (else it is `token#<position>`, counted from 1) and grants. */
  tokens?: Array<string | ({ token: string; user?: string } & Grants)>;
  users?: Record<string, { password: string } & Grants>;
  /**
   * Mutual TLS only (`tls.ca`): client certificate subject CNs (exact, case-sensitive) that log
   * their connection in from its first line, no `auth` needed, as user `cert:<CN>` (or `user`).
   * A CN not listed here gets no login; it may still `auth`. Without mutual TLS the start is refused.
   */
  certificates?: Record<string, { user?: string } & Grants>;
  /** Failed attempts from one client address (IPv6: one /64) before it is refused. Default 5. */
  maxFailures?: number;
  /** Delay before answering the first failure, doubled for each further one (max 5 s). Default 250 ms. */
  failureDelayMs?: number;
  /** An address's failures are forgotten this long after its latest one; till then it stays refused. Default 600000 (10 min). */
  failureWindowMs?: number;
  /** Client addresses whose failures are remembered at most (least recent forgotten first). Default 10000. */
  maxTrackedAddresses?: number;
  /** Password checks (scrypt: a full core for ~50 ms, on libuv's thread pool) running at once. Default 1: about 20 logins a second. */
  maxConcurrentVerifications?: number;
  /** Password checks waiting for a turn; more are refused at once. Default 32. */
  maxQueuedVerifications?: number;
  /** How the plugin waits out a reply delay; default node:timers/promises setTimeout. Tests pass their own. */
  wait?: (ms: number) => Promise<unknown>;
}

interface Principal {
  user: string;
  commands: Set<string> | null;
  readOnly: boolean;
}

const PUBLIC_COMMANDS = new Set(['auth', 'hello', 'ping', 'quit', 'help']);

const digest = (text: string) => createHash('sha256').update(text).digest();

function grantsOf(user: string, grants: Grants): Principal {
  return { user, commands: grants.commands ? new Set(grants.commands.map((c) => c.toLowerCase())) : null, readOnly: grants.readOnly === true };
}

/** The principals of `certificates`, by CN; throws on an option that is malformed or can never work. */
function certificatePrincipals(certificates: AuthOptions['certificates'], mutualTls: boolean): Map<string, Principal> {
  if (certificates === undefined) return new Map();
  if (typeof certificates !== 'object' || certificates === null || Array.isArray(certificates)) {
    throw new Error('auth plugin: "certificates" maps client certificate CNs to grants, e.g. { "app-1": { readOnly: true } }');
  }
  // Only a certificate the server verified against its own CA may stand for a principal.
  if (!mutualTls) throw new Error('auth plugin: "certificates" needs mutual TLS: set tls.ca (--tls-ca) to the CA that signs the client certificates');
  const principals = new Map<string, Principal>();
  for (const [commonName, grants] of Object.entries(certificates)) {
    if (commonName === '') throw new Error('auth plugin: "certificates" has an empty CN');
    const where = `auth plugin: certificate "${commonName}"`;
    if (typeof grants !== 'object' || grants === null || Array.isArray(grants)) throw new Error(`${where} needs an object of grants ({} for all commands)`);
    if (grants.user !== undefined && (typeof grants.user !== 'string' || grants.user === '')) throw new Error(`${where}: "user" must be a non-empty string`);
    if (grants.commands !== undefined && !(Array.isArray(grants.commands) && grants.commands.every((name) => typeof name === 'string'))) {
      throw new Error(`${where}: "commands" must be a list of command names`);
    }
    principals.set(commonName, grantsOf(grants.user ?? `cert:${commonName}`, grants));
  }
  return principals;
}

function wholeNumber(options: AuthOptions, name: keyof AuthOptions, fallback: number, min: number): number {
  const value = options[name] ?? fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) throw new Error(`auth plugin: "${name}" must be a whole number of at least ${min}`);
  return value;
}

export default definePlugin<AuthOptions, LineServer>({
  name: 'auth',
  apply(server, options = {}, plugin) {
    const tokenEntries = (options.tokens ?? []).map((entry) => (typeof entry === 'string' ? { token: entry } : entry));
    const users = options.users ?? {};
    const certificates = certificatePrincipals(options.certificates, server.mutualTls);
    if (tokenEntries.length === 0 && Object.keys(users).length === 0 && certificates.size === 0) {
      throw new Error('auth plugin: configure at least one token or user (or certificates, under mutual TLS)');
    }
    for (const [name, user] of Object.entries(users)) {
      if (!isPasswordHash(user.password)) throw new Error(`auth plugin: user "${name}" needs a password hash (sessionserver hash-password)`);
    }
    // Each token is its own principal, found by its digest: the order of the list changes nobody's rights.
    const tokens = new Map<string, { digest: Buffer; principal: Principal }>();
    tokenEntries.forEach((entry, index) => {
      if (typeof entry.token !== 'string' || !/^\S+$/.test(entry.token)) throw new Error(`auth plugin: token #${index + 1} must be one word (no spaces)`);
      const key = digest(entry.token);
      if (tokens.has(key.toString('hex'))) throw new Error(`auth plugin: token #${index + 1} is listed twice`);
      tokens.set(key.toString('hex'), { digest: key, principal: grantsOf(entry.user ?? `token#${index + 1}`, entry) });
    });
    const principals = new Map(Object.entries(users).map(([name, user]) => [name, grantsOf(name, user)]));
    // Own names only: `auth __proto__ x` must cost a decoy scrypt like any unknown user.
    const userNamed = (name: string) => (Object.hasOwn(users, name) ? users[name] : undefined);
    const state = authStateOf(server, {
      maxFailures: wholeNumber(options, 'maxFailures', 5, 1),
      failureDelayMs: wholeNumber(options, 'failureDelayMs', 250, 0),
      failureWindowMs: wholeNumber(options, 'failureWindowMs', 600_000, 1),
      maxAddresses: wholeNumber(options, 'maxTrackedAddresses', 10_000, 1),
      maxConcurrent: wholeNumber(options, 'maxConcurrentVerifications', 1, 1),
      maxQueued: wholeNumber(options, 'maxQueuedVerifications', 32, 0),
    });
    const { credentials, throttle, verifications } = state;
    const wait = options.wait ?? sleep;
    // Unknown users cost a full scrypt too, so timing does not tell which names exist.
    const decoyHash = hashPassword('decoy password');

    /** The principal a credential stands for in this configuration; undefined once its token or user is gone. */
    function principalOf(credential: Credential): Principal | undefined {
      switch (credential.kind) {
        case 'token':
          return tokens.get(credential.digest)?.principal;
        case 'user':
          return userNamed(credential.name)?.password === credential.hash ? principals.get(credential.name) : undefined;
        case 'certificate':
          return certificates.get(credential.commonName);
        case 'external':
          // Another plugin's authenticate tap vouched for this user: no grants configured here.
          return { user: credential.user, commands: null, readOnly: false };
      }
    }

    // Each connection's verified certificate CN, read once: the certificate cannot change under it.
    const peerNames = new WeakMap<Connection, string | null>();

    /** Logs `ctx` in by its client certificate when its CN is listed; undefined otherwise. */
    function certificateLogin(ctx: Connection): Principal | undefined {
      if (certificates.size === 0) return undefined;
      let commonName = peerNames.get(ctx);
      if (commonName === undefined) peerNames.set(ctx, (commonName = peerCertificateCommonName(ctx)));
      const principal = commonName === null ? undefined : certificates.get(commonName);
      if (!principal) return undefined;
      credentials.set(ctx, { kind: 'certificate', commonName: commonName! });
      ctx.user = principal.user;
      return principal;
    }

    /** Who `ctx` is now: its login checked against this configuration, else its certificate. */
    function currentPrincipal(ctx: Connection): Principal | undefined {
      const credential = credentials.get(ctx);
      const principal = credential && principalOf(credential);
      if (principal) {
        if (ctx.user !== principal.user) ctx.user = principal.user;
        return principal;
      }
      if (credential) {
        // Its token, user or certificate left the configuration (plugin reload): logged out.
        credentials.delete(ctx);
        ctx.user = null;
      }
      return certificateLogin(ctx);
    }

    // A listed certificate is the login: ctx.user is known before the first line.
    plugin.tap(server.hooks.connection, (ctx: Connection) => void certificateLogin(ctx));

    const authenticate = authenticateHook(server);
    plugin.tapPromise(authenticate, async (ctx, first, rest) => {
      if (rest === '') {
        const given = digest(first);
        let match: string | undefined;
        // Compare against every token, without stopping early.
        for (const [key, entry] of tokens) if (timingSafeEqual(given, entry.digest) && match === undefined) match = key;
        return match === undefined ? undefined : `token:${match}`;
      }
      if (!verifications.hasRoom()) throw CommandError.of('E_AUTH_BUSY');
      const address = clientAddressKey(ctx.socket.remoteAddress);
      const user = userNamed(first);
      const ok = await verifications.run(async () => {
        // Failures from this address may have used up its allowance while this check waited.
        if (throttle.blocked(address)) throw CommandError.of('E_AUTH_THROTTLED');
        return verifyPassword(rest, user ? user.password : await decoyHash);
      });
      return ok && user ? `user:${first}` : undefined;
    });

    /** What the authenticate hook's answer means here. */
    function credentialOf(result: string): Credential {
      if (result.startsWith('token:') && tokens.has(result.slice(6))) return { kind: 'token', digest: result.slice(6) };
      const user = result.startsWith('user:') ? userNamed(result.slice(5)) : undefined;
      if (user) return { kind: 'user', name: result.slice(5), hash: user.password };
      return { kind: 'external', user: result };
    }

    const refuseAddress = (ctx: Connection, address: string): never => {
      ctx.log.warn({ connection: ctx.id, address }, 'authentication refused: too many failures from this address');
      ctx.end();
      throw CommandError.of('E_AUTH_THROTTLED');
    };

    plugin.addCommand({
      name: 'auth',
      access: 'read',
      usage: 'auth <token> | auth <user> <password>',
      summary: 'authenticate this connection',
      failure: 'Authentication failed',
      async run(ctx, first, rest) {
        const address = clientAddressKey(ctx.socket.remoteAddress);
        if (throttle.blocked(address)) refuseAddress(ctx, address);
        const before = throttle.count(address);
        let result: string | undefined;
        try {
          result = first === '' ? undefined : await authenticate.promise(ctx, first, rest);
        } catch (error) {
          if (isCommandError(error) && error.code === 'E_AUTH_THROTTLED') refuseAddress(ctx, address);
          throw error;
        }
        const credential = result === undefined ? undefined : credentialOf(result);
        const principal = credential && principalOf(credential);
        // The failure counts before the reply is delayed: hanging up early does not undo it.
        const count = principal ? before : throttle.record(address);
        if (!principal) ctx.log.warn({ connection: ctx.id, remote: ctx.remoteAddress, failures: count }, 'authentication failed');
        const delay = throttle.delayFor(before, principal !== undefined);
        if (delay > 0) await wait(delay);
        if (principal) {
          credentials.set(ctx, credential!);
          ctx.user = principal.user;
          return;
        }
        if (throttle.exhausted(count)) refuseAddress(ctx, address);
        throw CommandError.of('E_AUTH_FAILED');
      },
    });

    plugin.tap(server.hooks.beforeCommand, (ctx: Connection, entry: CommandEntry, request: Request) => {
      if (PUBLIC_COMMANDS.has(entry.name)) return undefined;
      const principal = currentPrincipal(ctx);
      if (!principal) return replyText('E_AUTH_REQUIRED');
      if (principal.commands && !principal.commands.has(entry.name)) return replyText('E_NOT_ALLOWED');
      if (principal.readOnly && accessOf(entry, request.arg1, request.arg2) === 'write') return replyText('E_READ_ONLY');
      return undefined;
    });
  },
});
