import { connect } from 'node:net';
import test from 'ava';
import { replyText } from '../lib/protocol/replies.js';
import { RawClient } from './support/raw-client.js';
import { startServer } from './support/server.js';

// A line that arrives whole in one read runs straight from the read buffer (LineServer.dispatchBytes);
// one split across reads, or queued behind a command in flight, is decoded first (dispatch). These
// tests send the same bytes both ways and hold both to the same replies.

const UNKNOWN = `err ${replyText('E_UNKNOWN_COMMAND')}`;
const NO_KEY = `err ${replyText('E_NO_KEY')}`;

/** Request lines for an open session as raw bytes (some not valid UTF-8), each with its line end, and the reply each must get; all but the last run at once (no async command among them). */
function script(): Array<[Buffer, string]> {
  const line = (text: string) => Buffer.from(text, 'utf8');
  // An invalid key and value: a lone 0xFF, and a character cut short right before a space.
  const badKey = Buffer.from([0x62, 0x61, 0x64, 0xff]);
  const badValue = Buffer.concat([Buffer.from([0xe2, 0x82]), line(' tail')]);
  const decoded = (bytes: Buffer) => bytes.toString('utf8');
  return [
    [line('put plain value with  spaces \r\n'), 'ok'],
    [line('get plain\n'), 'ok value with  spaces'],
    [line('GET plain\r\n'), 'ok value with  spaces'],
    [line(' \tGeT plain \t\r\n'), 'ok value with  spaces'],
    [line('exists plain\r\n'), 'ok'],
    [line('exists nothing\n'), NO_KEY],
    [line('put  second-part\r\n'), 'ok'],
    [line('get_all json\r\n'), 'ok {"plain":"value with  spaces","":"second-part"}'],
    [line('put ключ значение с пробелами\r\n'), 'ok'],
    [line('get ключ\r\n'), 'ok значение с пробелами'],
    [line('put emoji 😀x\n'), 'ok'],
    [line('get emoji\r\n'), 'ok 😀x'],
    [Buffer.concat([line('put '), badKey, line(' '), badValue, line('\r\n')]), 'ok'],
    [Buffer.concat([line('get '), badKey, line('\r\n')]), `ok ${decoded(badValue)}`],
    [line('remove emoji\r\n'), 'ok'],
    // The Kelvin sign lower-cases to an ASCII k: routed as the text path routes it.
    [line('\u212Aeys\r\n'), `ok plain||ключ|${decoded(badKey)}`],
    [line('nosuch command\r\n'), UNKNOWN],
    [line('\r\n'), UNKNOWN],
    [line('close\r\n'), 'ok'],
  ];
}

/** Ways to cut the same bytes into writes: whole, a write per line, a byte per write, cut inside every multi-byte character. */
const deliveries: Record<string, (bytes: Buffer, lines: Buffer[]) => Buffer[]> = {
  'one write': (bytes) => [bytes],
  'a write per line': (_bytes, lines) => lines,
  'a byte per write': (bytes) => [...bytes].map((byte) => Buffer.from([byte])),
  'cut inside characters': (bytes) => {
    const chunks: Buffer[] = [];
    let start = 0;
    for (let i = 0; i < bytes.length; i++) {
      if (bytes[i]! >= 0x80 && i + 1 < bytes.length && bytes[i + 1]! >= 0x80) {
        chunks.push(bytes.subarray(start, i + 1));
        start = i + 1;
      }
    }
    chunks.push(bytes.subarray(start));
    return chunks;
  },
};

for (const [name, cut] of Object.entries(deliveries)) {
  test(`CRLF and LF lines, trimming, case, UTF-8 and bad UTF-8 get the same replies: ${name}`, async (t) => {
    const { port } = await startServer(t);
    const client = await RawClient.open(port);
    t.teardown(() => client.destroy());
    // Lines of their own first: a connection's first line always takes the text path (HTTP
    // check), and lines queued behind an async command (open) are decoded before they run.
    await client.write([Buffer.from(`ping\r\nopen fastpath${name.replace(/\W/g, '')} rw\r\n`)]);
    t.is(await client.next(5000), 'ok pong');
    t.is(await client.next(5000), 'ok');
    const steps = script();
    const lines = steps.map(([bytes]) => bytes);
    await client.write(cut(Buffer.concat(lines), lines));
    for (const [index, [, expected]] of steps.entries()) {
      t.is(await client.next(5000), expected, `reply ${index + 1} (${JSON.stringify(lines[index]!.toString('utf8'))})`);
    }
    t.is(client.malformed, null);
  });
}

test('an HTTP request line is refused as the first line, and read as a command later', async (t) => {
  const { port } = await startServer(t);
  const later = await RawClient.open(port);
  t.teardown(() => later.destroy());
  await later.write([Buffer.from('ping\r\nGET / HTTP/1.1\r\nping\r\n')]);
  t.is(await later.next(5000), 'ok pong');
  t.is(await later.next(5000), `err ${replyText('E_NO_SESSION')}`, 'a get of the key "/"');
  t.is(await later.next(5000), 'ok pong');
  const first = await RawClient.open(port);
  t.teardown(() => first.destroy());
  await first.write([Buffer.from('GET / HTTP/1.1\r\nping\r\n')]);
  t.is(await first.next(5000), `err ${replyText('E_HTTP_REFUSED')}`);
  t.is(await first.next(5000), null, 'closed without running the next line');
});

test('over-long lines: the limit counts bytes (CR included), whole or cut, and the next line runs', async (t) => {
  const { port } = await startServer(t, { maxLineLength: 16 });
  const tooLong = `err ${replyText('E_LINE_TOO_LONG', { limit: 16 })}`;
  // 16 bytes before the LF: runs. 17: too long. 16 with a two-byte character cut by the limit: 17, too long.
  const exact = 'get abcdefghijk\r';
  const over = 'get abcdefghijkl\r';
  const overInCharacter = 'get abcdefghij\u00e9\r';
  t.is(Buffer.byteLength(exact), 16);
  t.is(Buffer.byteLength(over), 17);
  t.is(Buffer.byteLength(overInCharacter), 17);
  const text = `${exact}\n${over}\n${overInCharacter}\nping\n`;
  for (const chunks of [[Buffer.from(text)], [...Buffer.from(text)].map((byte) => Buffer.from([byte]))]) {
    const client = await RawClient.open(port);
    t.teardown(() => client.destroy());
    // Opened first, so that the lines after it run as they arrive, not queued behind `new`.
    await client.write([Buffer.from('new\n')]);
    t.regex((await client.next(5000))!, /^ok \S+$/);
    await client.write(chunks);
    t.is(await client.next(5000), NO_KEY);
    t.is(await client.next(5000), tooLong);
    t.is(await client.next(5000), tooLong);
    t.is(await client.next(5000), 'ok pong');
    t.is(client.malformed, null);
  }
});

test('a pipelined burst of 2,000 requests in one write is answered in order', async (t) => {
  const { port } = await startServer(t);
  const client = await RawClient.open(port);
  t.teardown(() => client.destroy());
  const lines = ['new'];
  for (let i = 0; i < 1000; i++) lines.push(`put k${i % 10} value-${i}`, `get k${i % 10}`);
  await client.write([Buffer.from(`${lines.join('\r\n')}\r\n`)]);
  t.regex((await client.next(5000))!, /^ok \S+$/);
  for (let i = 0; i < 1000; i++) {
    t.is(await client.next(5000), 'ok', `put ${i}`);
    t.is(await client.next(5000), `ok value-${i}`, `get ${i}`);
  }
  t.is(client.malformed, null);
});

test('a client that stops reading: lines that arrive while replies are blocked run later, in order', async (t) => {
  const { port, server } = await startServer(t);
  const big = 'x'.repeat(64 * 1024);
  const socket = connect(port, '127.0.0.1');
  t.teardown(() => socket.destroy());
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  socket.pause();
  // 200 replies of 64 KiB (12.5 MiB) fill both socket buffers: the server blocks on its writes
  // while the client keeps sending puts and gets that change what the gets must return.
  const requests = ['new', `put big ${big}`];
  for (let i = 0; i < 100; i++) requests.push('get big', `put n ${i}`, 'get n');
  socket.write(`${requests.join('\n')}\n`);
  const serverSide = [...server.connections][0]!;
  // Blocked: the server socket holds unsent replies and the client has read none of them.
  while (serverSide.socket.writableLength === 0) await new Promise((resolve) => setTimeout(resolve, 20));
  socket.write('get n\nquit\n');
  let received = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => (received += chunk));
  socket.resume();
  await new Promise<void>((resolve) => socket.once('close', () => resolve()));
  const replies = received.split('\r\n');
  t.is(replies.pop(), '', 'every reply ends in CRLF');
  t.is(replies.length, 2 + 300 + 2);
  t.regex(replies[0]!, /^ok \S+$/);
  t.is(replies[1], 'ok');
  for (let i = 0; i < 100; i++) {
    t.is(replies[2 + i * 3], `ok ${big}`);
    t.is(replies[3 + i * 3], 'ok');
    t.is(replies[4 + i * 3], `ok ${i}`, `get n after put n ${i}`);
  }
  t.is(replies[302], 'ok 99');
  t.is(replies[303], 'ok');
});
