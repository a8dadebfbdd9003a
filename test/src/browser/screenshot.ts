// `pnpm docs:screenshot`: docs/images/chat-page.png, the demo's chat page as the README shows it: the demo
// cluster, two users in two browser pages, a short conversation, alice's page captured.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../paths.js';
import { pollUntil } from '../poll.js';
import { ChatPage, launchBrowser, startDemo } from './chat-page.js';

const cleanups: (() => unknown)[] = [];
const t = { after: (fn: () => unknown) => void cleanups.push(fn) };
try {
  const demo = await startDemo(t);
  const browser = await launchBrowser(t);
  const alice = await ChatPage.open(browser, demo.pageUrl, 'alice');
  const bob = await ChatPage.open(browser, demo.pageUrl, 'bob');
  await ChatPage.open(browser, demo.pageUrl, 'carol');
  await alice.chatWith('bob');
  await bob.chatWith('alice');
  const lines: [ChatPage, string][] = [
    [alice, 'Hi Bob! Are the release notes ready?'],
    [bob, 'Almost: the shard table section is still missing.'],
    [alice, 'Great, I will review it after lunch.'],
    [bob, 'Thanks!'],
  ];
  for (const [page, body] of lines) {
    await page.type(body);
    await pollUntil(async () =>
      (await page.messages()).some((m) => m.body === body && m.status !== 'sending'),
    );
  }
  await pollUntil(async () => (await alice.page.locator('#contacts [data-user="carol"]').count()) > 0, {
    what: 'carol in the online list',
  });
  mkdirSync(join(repoRoot, 'docs/images'), { recursive: true });
  const file = join(repoRoot, 'docs/images/chat-page.png');
  await alice.page.screenshot({ path: file });
  console.log(`wrote ${file}`);
} finally {
  for (const fn of cleanups.reverse()) await fn();
}
