import { readFile } from 'node:fs/promises';
import { createServer as createTcpServer, Socket, type Server, type ServerOpts } from 'node:net';
import { createSecureContext, createServer as createTlsServer, TLSSocket, type SecureContextOptions, type Server as TlsServer } from 'node:tls';
import { ConfigError } from './errors.js';

/** Serve TLS only: PEM file paths. With `ca`, clients must present a certificate it signed (mutual TLS). */
export interface TlsOptions {
  /** The server's certificate chain. */
  cert: string;
  /** The certificate's private key. */
  key: string;
  /** CA certificates that sign accepted client certificates. */
  ca?: string;
  /** Ask clients for a certificate and refuse those without a valid one. Default: true when `ca` is set. */
  requestCert?: boolean;
}

/**
 * A client that has not finished its TLS handshake by then is dropped: a plaintext client
 * sending a request line fails the handshake at once, a silent one lasts this long.
 */
export const TLS_HANDSHAKE_TIMEOUT_MS = 5000;

const FILE_ROLES = { cert: 'certificate', key: 'key', ca: 'CA certificate' } as const;

const FILE_PROBLEMS: Record<string, string> = {
  ENOENT: 'no such file',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EISDIR: 'is a directory, not a PEM file',
};

/**
 * Makes the listening server: plain TCP, or TLS when `tls` is given (then `onSocket` sees
 * only clients whose handshake, and certificate under mutual TLS, succeeded). Reads and
 * checks the TLS files first; a problem throws a ConfigError naming the file.
 */
export async function createListener(
  serverOptions: ServerOpts,
  tls: TlsOptions | undefined,
  onSocket: (socket: Socket) => void,
  onClientError: (error: NodeJS.ErrnoException, remoteAddress: string | undefined) => void = () => {},
): Promise<Server> {
  if (!tls) return createTcpServer(serverOptions, onSocket);
  const requestCert = tls.requestCert ?? tls.ca !== undefined;
  // Half-open only once the handshake is done: a client that gives up during the handshake
  // (it rejected our certificate) must close the socket, not leave it open until the timeout.
  const { allowHalfOpen = false, ...tcpOptions } = serverOptions;
  const server = createTlsServer(
    {
      ...tcpOptions,
      ...(await readTlsFiles(tls)),
      requestCert,
      rejectUnauthorized: requestCert,
      handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS,
    },
    (socket) => {
      socket.allowHalfOpen = allowHalfOpen;
      onSocket(socket);
    },
  );
  // A failed handshake (plaintext client, no or bad client certificate, timeout) is the
  // client's problem: Node destroys that socket; the server goes on serving the others.
  server.on('tlsClientError', (error: NodeJS.ErrnoException, socket: TLSSocket) => {
    socket.destroy();
    onClientError(error, socket.remoteAddress);
  });
  return server;
}

/**
 * Reads the certificate files again (certificate renewal, SIGHUP): connections accepted
 * from now on use them, established ones keep theirs. On a bad file the old ones stay in
 * service and the ConfigError names the problem.
 */
export async function reloadCertificates(server: Server, tls: TlsOptions): Promise<void> {
  const material = await readTlsFiles(tls);
  (server as TlsServer).setSecureContext(material);
}

/** Reads the PEM files and checks that they make a working context, naming the file at fault. */
export async function readTlsFiles(tls: TlsOptions): Promise<SecureContextOptions> {
  if (!tls.cert) throw new ConfigError('TLS: a key needs its certificate (tls.cert, --tls-cert)');
  if (!tls.key) throw new ConfigError(`TLS: the certificate ${tls.cert} needs its key (tls.key, --tls-key)`);
  const cert = await readPem('cert', tls.cert);
  const key = await readPem('key', tls.key);
  const ca = tls.ca === undefined ? undefined : await readPem('ca', tls.ca);
  // One piece at a time, so the message names the file OpenSSL did not like.
  checkContext({ cert }, `TLS certificate ${tls.cert}: not a PEM certificate`);
  checkContext({ key }, `TLS key ${tls.key}: not a PEM private key (or it is encrypted)`);
  checkContext({ cert, key }, `TLS key ${tls.key} does not belong to the certificate ${tls.cert}`);
  if (ca !== undefined) checkContext({ ca }, `TLS CA certificate ${tls.ca}: not a PEM certificate`);
  return { cert, key, ...(ca !== undefined ? { ca } : {}) };
}

async function readPem(role: keyof typeof FILE_ROLES, path: string): Promise<Buffer> {
  let content: Buffer;
  try {
    content = await readFile(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? '';
    throw new ConfigError(`TLS ${FILE_ROLES[role]} ${path}: ${FILE_PROBLEMS[code] ?? 'cannot be read'}${code ? ` (${code})` : ''}`);
  }
  if (content.length === 0) throw new ConfigError(`TLS ${FILE_ROLES[role]} ${path}: the file is empty`);
  return content;
}

function checkContext(options: SecureContextOptions, problem: string): void {
  try {
    createSecureContext(options);
  } catch (error) {
    // OpenSSL's reason ("no start line", "key values mismatch") after ours, on the same line.
    const reason = (error as Error).message.replace(/^error:[0-9A-F]+:[^:]*:[^:]*:/, '').trim();
    throw new ConfigError(reason ? `${problem} (${reason})` : problem);
  }
}

/**
 * The common name (CN) of the client certificate on a mutual-TLS connection, or null when
 * there is none or it was not verified against the configured CA. What an auth plugin may
 * accept as the principal: `peerCertificateCommonName(ctx)` with a Connection (or a socket).
 */
export function peerCertificateCommonName(connectionOrSocket: { socket: Socket } | Socket): string | null {
  const socket = connectionOrSocket instanceof Socket ? connectionOrSocket : connectionOrSocket.socket;
  if (!(socket instanceof TLSSocket) || !socket.authorized) return null;
  const commonName: unknown = socket.getPeerCertificate().subject?.CN;
  // A subject may carry several CNs; an ambiguous one names no one.
  return typeof commonName === 'string' && commonName !== '' ? commonName : null;
}
