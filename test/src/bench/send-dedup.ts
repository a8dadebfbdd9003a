// The cid window's cost per send at its bound (node/src/send-dedup.ts): 300,000 sends with unique cids
// through a window of 100,000 entries, in rounds of 50,000; prints each round's time and the total.
// A script, not a test:  node --conditions=source --import tsx test/src/bench/send-dedup.ts
import { SendDedup, type SendAnswer } from '@chat/node';

const noop = { inc: () => undefined };
const dedup = new SendDedup({
  windowMs: 300_000,
  metrics: { sendRetries: noop, sendDedupEvictions: noop } as never,
});
const ack = (id: string): Promise<SendAnswer> => Promise.resolve({ type: 'ack', id, status: 'delivered' });
const started = performance.now();
for (let round = 0; round < 6; round++) {
  const t = performance.now();
  const answers: Promise<SendAnswer>[] = [];
  for (let i = 0; i < 50_000; i++) {
    const n = round * 50_000 + i;
    const key = { userId: `u${n % 2000}`, cid: `c${n}`, to: `u${(n + 1) % 2000}`, body: 'hello' };
    answers.push(dedup.send(key, ack));
  }
  await Promise.all(answers);
  console.log(
    `round ${round}: ${(performance.now() - t).toFixed(0)} ms for 50,000 sends, ${dedup.size} held`,
  );
}
console.log(`total ${(performance.now() - started).toFixed(0)} ms`);
dedup.close();
