// The demo's browser chat page in a real browser (Debian's chromium driven by playwright-core), against
// the demo cluster as `npm start` runs it: two pages chat; a drained node moves a page without losing or
// repeating a message; a short-lived token is refreshed without the page noticing.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { pollUntil } from '../poll.js';
import { ChatPage, launchBrowser, startDemo, type ShownMessage } from './chat-page.js';

const final = (m: ShownMessage) => m.status === 'delivered' || m.status === 'accepted';

describe('the browser chat page', () => {
  test('two pages chat: the contact list shows who is online, messages arrive with their delivery state', async (t) => {
    const demo = await startDemo(t);
    const browser = await launchBrowser(t);
    const alice = await ChatPage.open(browser, demo.pageUrl, 'alice');
    const bob = await ChatPage.open(browser, demo.pageUrl, 'bob');

    // Bob is online, so alice's contact list names him (the list refreshes every 2 s).
    await pollUntil(
      async () => (await alice.page.locator('#contacts [data-user="bob"]').textContent())?.startsWith('● '),
      {
        what: 'bob in alice’s online list',
      },
    );
    await alice.page.click('#contacts [data-user="bob"]');
    await alice.type('hello bob');
    const sent = await pollUntil(async () => (await alice.messages()).find((m) => m.out && final(m)), {
      what: 'alice’s message to be answered',
    });
    assert.equal(sent.body, 'hello bob');
    assert.ok(sent.id, 'an answered message shows its server id');

    // Bob sees an unread badge next to alice, opens the conversation, reads it and answers.
    await pollUntil(
      async () => (await bob.page.locator('#contacts [data-user="alice"] .unread').textContent()) === '1',
      {
        what: 'an unread badge on bob’s page',
      },
    );
    await bob.page.click('#contacts [data-user="alice"]');
    const received = await bob.messages();
    assert.deepEqual(
      received.map((m) => [m.out, m.body, m.id]),
      [[false, 'hello bob', sent.id]],
    );
    await bob.type('hi alice');
    await pollUntil(async () => (await alice.messages()).some((m) => !m.out && m.body === 'hi alice'), {
      what: 'bob’s answer on alice’s page',
    });
    assert.deepEqual(alice.errors, []);
    assert.deepEqual(bob.errors, []);
  });

  test('a drained node: the page shows it reconnecting, comes back, and no message is lost or shown twice', async (t) => {
    const demo = await startDemo(t);
    const browser = await launchBrowser(t);
    const alice = await ChatPage.open(browser, demo.pageUrl, 'alice');
    const bob = await ChatPage.open(browser, demo.pageUrl, 'bob');
    await alice.chatWith('bob');
    await bob.chatWith('alice');

    const COUNT = 30;
    const victim = await demo.ownerOf('bob');
    // Alice types while bob's node drains (its sessions are closed with 4002, spread over 2 s): what is sent
    // to bob while he reconnects is held for him or queued on alice's side, never lost.
    const drained = demo.drain(victim);
    for (let i = 1; i <= COUNT; i++) await alice.type(`m${i}`);
    await drained;
    await pollUntil(async () => (await bob.handle()).states.some((s) => s.state === 'reconnecting'), {
      what: 'bob’s page to show that it reconnects',
    });
    await bob.waitOpen();
    assert.notEqual(await demo.ownerOf('bob'), victim, 'bob’s shard moved off the drained node');

    // Every message answered on alice's side, and each shown once on bob's, in order.
    const sent = await pollUntil(
      async () => {
        const mine = (await alice.messages()).filter((m) => m.out);
        return mine.length === COUNT && mine.every(final) && mine;
      },
      { timeoutMs: 30_000, what: 'every message alice sent to be answered' },
    );
    const received = await pollUntil(
      async () => {
        const theirs = (await bob.messages()).filter((m) => !m.out);
        return theirs.length >= COUNT && theirs;
      },
      { timeoutMs: 30_000, what: 'bob to have every message' },
    );
    // A late duplicate would arrive before a message sent after everything was answered.
    await alice.type('end');
    await pollUntil(async () => (await bob.messages()).some((m) => m.body === 'end'), {
      what: 'the closing message on bob’s page',
    });
    const bodies = (await bob.messages()).filter((m) => !m.out).map((m) => m.body);
    assert.deepEqual(
      bodies,
      [...Array.from({ length: COUNT }, (_, i) => `m${i + 1}`), 'end'],
      'each message once, in order',
    );
    assert.deepEqual(
      received.slice(0, COUNT).map((m) => m.id),
      sent.map((m) => m.id),
      'the ids bob shows are the ids alice’s sends were answered with',
    );
    const { lastReconnectMs } = await bob.handle();
    assert.ok(lastReconnectMs !== undefined && lastReconnectMs > 0);
    console.log(`# bob's page reconnected ${lastReconnectMs} ms after its node's drain closed it`);
    assert.deepEqual([...alice.errors, ...bob.errors], []);
  });

  test('the whole demo stops: the page says why it reconnects, backs off, and comes back when the demo is back', async (t) => {
    const demo = await startDemo(t);
    const browser = await launchBrowser(t);
    const alice = await ChatPage.open(browser, demo.pageUrl, 'alice');
    await demo.stop();
    const stoppedAt = Date.now();
    // The page's token requests go to the demo too: the attempts fail there, and the page says so.
    await pollUntil(async () => (await alice.page.textContent('#conn'))?.includes('CLIENT_ERR_TOKEN'), {
      what: 'the page to show why it cannot connect',
    });
    assert.equal(await alice.connectionState(), 'reconnecting');
    assert.equal((await alice.handle()).lastReconnectMs, undefined, 'failed attempts are not a reconnect');
    // Started again on the same ports: the page (served by the demo, already loaded) reconnects by itself.
    const downMs = Date.now() - stoppedAt;
    await startDemo(t, {
      CHAT_ROUTER_PORT: String(demo.ports.router),
      CHAT_ROUTER_ADMIN_PORT: String(demo.ports.admin),
      CHAT_DEMO_PAGE_PORT: String(demo.ports.page),
    });
    await alice.waitOpen(45_000);
    const { lastReconnectMs } = await alice.handle();
    assert.ok(
      lastReconnectMs !== undefined && lastReconnectMs >= downMs,
      `the reconnect (${lastReconnectMs} ms) spans the outage (at least ${downMs} ms)`,
    );
    assert.match((await alice.page.textContent('#conn')) ?? '', /back after \d+ ms/);
    // Bob is not connected: the answer is shown as such.
    await alice.chatWith('bob');
    await alice.type('are you there?');
    const answered = await pollUntil(
      async () => (await alice.messages()).find((m) => m.status !== 'sending'),
      {
        what: 'the send to be answered',
      },
    );
    assert.equal(answered.status, 'offline');
    assert.deepEqual(alice.errors, []);
  });

  test('a token that expires every 6 s is refreshed in-band: the page never leaves `open` and keeps chatting', async (t) => {
    const demo = await startDemo(t);
    const browser = await launchBrowser(t);
    const alice = await ChatPage.open(browser, demo.pageUrl, 'alice', '&ttl=6');
    const bob = await ChatPage.open(browser, demo.pageUrl, 'bob', '&ttl=6');
    await alice.chatWith('bob');
    const openedAt = Date.now();
    // Two refreshes each: the connection outlived the token it was opened with, twice.
    await pollUntil(async () => (await alice.handle()).tokens >= 4 && (await bob.handle()).tokens >= 4, {
      timeoutMs: 30_000,
      what: 'two token refreshes on each page',
    });
    assert.ok(Date.now() - openedAt > 6000, 'the first token has expired by now');
    await alice.type('still here');
    await pollUntil(async () => (await alice.messages()).find((m) => m.out && final(m)), {
      what: 'a message sent after the first token expired to be delivered',
    });
    for (const page of [alice, bob]) {
      const states = (await page.handle()).states.map((s) => s.state);
      assert.deepEqual(
        states.filter((s) => s !== 'connecting' && s !== 'open'),
        [],
        `${page.userId}'s page never reconnected: ${states.join(' -> ')}`,
      );
      assert.equal(await page.connectionState(), 'open');
    }
  });
});
