/**
 * Child process: the floor for any Node line server. Answers `ok` to every line,
 * written the simplest fast way: find LFs with indexOf, one batched write per data
 * event. No parsing, no dispatch, no state: what is left is the cost of Node's sockets.
 */
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { serveUnderControl } from './server-control.js';

const LF = 10;
const OK = 'ok\r\n';

function answer(socket: Socket): void {
  // A line split across chunks is answered when its LF arrives: no state needed.
  socket.on('data', (chunk: Buffer) => {
    let replies = 0;
    let start = 0;
    let lf: number;
    while ((lf = chunk.indexOf(LF, start)) !== -1) {
      replies++;
      start = lf + 1;
    }
    if (replies > 0) socket.write(replies === 1 ? OK : OK.repeat(replies));
  });
  socket.on('error', () => {});
}

const sockets = new Set<Socket>();
const server = createServer({ noDelay: true }, (socket) => {
  sockets.add(socket);
  socket.once('close', () => sockets.delete(socket));
  answer(socket);
});
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  serveUnderControl(port, async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
});
