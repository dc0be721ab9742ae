// whoami: this connection as the server sees it — handy when debugging a client or a pool.
// A plain function export: the command is named after the file. The session id is not shown:
// it is the client's secret and the client already knows it.

/** @param {import('sessionserver').SessionConnection} ctx */
export default function whoami(ctx) {
  const session = ctx.session;
  return [
    `connection=${ctx.id}`,
    `remote=${ctx.remoteAddress}`,
    `user=${ctx.user ?? '-'}`,
    `session=${session ? 'open' : 'none'}`,
    `mode=${session ? session.mode : '-'}`,
    `keys=${session ? session.size : 0}`,
  ].join(' ');
}
