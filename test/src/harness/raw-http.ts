import { connect, type Socket } from 'node:net';

export interface RawResponse {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly socket: Socket;
  /** What arrived after the head with it (the start of the body). */
  readonly rest: string;
}

/** Opens a TCP connection to 127.0.0.1:`port` (for requests a WebSocket client would refuse to send). */
export async function rawConnect(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Sends `request` as is and resolves with the response's status line and headers. */
export async function rawRequest(port: number, request: string): Promise<RawResponse> {
  const socket = await rawConnect(port);
  socket.on('error', () => undefined);
  return new Promise((resolve, reject) => {
    let buffer = '';
    socket.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('latin1');
      const end = buffer.indexOf('\r\n\r\n');
      if (end < 0) return;
      const [statusLine = '', ...lines] = buffer.slice(0, end).split('\r\n');
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const i = line.indexOf(':');
        headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
      }
      socket.removeAllListeners('data');
      resolve({ status: Number(statusLine.split(' ')[1]), headers, socket, rest: buffer.slice(end + 4) });
    });
    socket.once('close', () => reject(new Error(`closed without a response; got ${JSON.stringify(buffer)}`)));
    socket.write(request);
  });
}

/** A WebSocket upgrade request head for `path`. */
export function upgradeRequest(path: string, extra = ''): string {
  return (
    `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`
  );
}
