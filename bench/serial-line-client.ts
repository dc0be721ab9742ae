import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';

/** A protocol client with one request in flight: a line out, its reply back. `err` replies throw. */
export class SerialLineClient {
  private buffered = '';
  private waiting: ((line: string) => void) | null = null;

  private constructor(private readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.buffered += chunk;
      const lf = this.buffered.indexOf('\n');
      if (lf === -1 || !this.waiting) return;
      const line = this.buffered.slice(0, lf);
      this.buffered = this.buffered.slice(lf + 1);
      const wake = this.waiting;
      this.waiting = null;
      wake(line);
    });
  }

  static connect(port: number, host = '127.0.0.1'): Promise<SerialLineClient> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host, port, noDelay: true }, () => resolve(new SerialLineClient(socket)));
      socket.once('error', reject);
    });
  }

  /** Sends `line` (CRLF included) and resolves with its reply line. */
  async request(line: string): Promise<string> {
    const reply = new Promise<string>((resolve) => (this.waiting = resolve));
    this.socket.write(line);
    const text = await reply;
    if (text.startsWith('err')) throw new Error(text);
    return text;
  }

  close(): void {
    this.socket.destroy();
  }
}

export const CLOCK_TICKS_PER_SECOND = 100;

/** CPU time (user + system) a process has used, in ms, from /proc/<pid>/stat; null if unreadable. */
export function processCpuMs(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesized command name; utime and stime are fields 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return null;
  }
}
