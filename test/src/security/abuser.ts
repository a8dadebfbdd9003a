// The abuse of issue 15, item 1, as its own process (so its sending does not slow the test's own
// measurements): one user holds `connections` sockets to a node and sends a seed frame of many small keys
// (`bytes` long) on each, `perSec` times a second, reconnecting whenever it is closed or refused. It stops
// when its parent disconnects. Prints one JSON line of counts to stdout on SIGTERM.
import WebSocket from 'ws';

const [url = '', connections = '10', bytes = '53000', perSec = '48'] = process.argv.slice(2);

/** `{"sender_id":"mallory","receiver_id":"nobody","k0":0,...}` of about `size` bytes. */
function manyKeys(size: number): string {
  const parts = ['"sender_id":"mallory"', '"receiver_id":"nobody"'];
  let length = 2 + parts.join(',').length;
  for (let i = 0; length < size; i++) {
    const part = `"k${i}":${i % 10}`;
    parts.push(part);
    length += part.length + 1;
  }
  return `{${parts.join(',')}}`;
}

const frame = manyKeys(Number(bytes));
const counts = { sent: 0, opened: 0, closes: {} as Record<string, number>, refused: 0, answers: 0 };
const sockets = new Set<WebSocket>();
let stopping = false;

function open(): void {
  if (stopping) return;
  const ws = new WebSocket(url);
  ws.on('open', () => {
    counts.opened++;
    sockets.add(ws);
  });
  ws.on('message', () => counts.answers++);
  ws.on('unexpected-response', (_req, res) => {
    counts.refused++;
    res.resume();
    ws.terminate();
  });
  ws.on('error', () => undefined);
  ws.on('close', (code) => {
    sockets.delete(ws);
    counts.closes[code] = (counts.closes[code] ?? 0) + 1;
    // Straight back, as an attacker would (a refused upgrade waits a little).
    setTimeout(open, 100).unref();
  });
}

for (let i = 0; i < Number(connections); i++) open();
const timer = setInterval(
  () => {
    for (const ws of sockets) {
      // A socket the node no longer reads is not pushed further (the abuse is CPU, not memory).
      if (ws.readyState === WebSocket.OPEN && ws.bufferedAmount < 1_000_000) {
        ws.send(frame);
        counts.sent++;
      }
    }
  },
  1000 / Number(perSec),
);

process.send?.({ type: 'ready', frameBytes: frame.length });
process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => {
  stopping = true;
  clearInterval(timer);
  for (const ws of sockets) ws.terminate();
  process.stdout.write(`${JSON.stringify(counts)}\n`, () => process.exit(0));
});
