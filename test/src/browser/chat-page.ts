// Drives the demo's browser chat page (demo/web) in Debian's chromium through playwright-core: the demo
// cluster as `npm start` runs it, and one browser page per user. Used by chat-page.test.ts and by the
// screenshot script (screenshot.ts).
import { existsSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';
import { forkService } from '../harness/node-process.js';
import type { Cleanup } from '../kafka/harness.js';
import { pollUntil } from '../poll.js';

/** Debian's chromium (`.ci/run` installs it when missing). */
export const CHROMIUM = process.env.CHAT_TEST_CHROMIUM ?? '/usr/bin/chromium';

export const PAGE_SECRET = 'browser-test-secret-0123456789abcdef';

export interface DemoCluster {
  readonly pageUrl: string;
  readonly adminUrl: string;
  /** The ports it listens on (to start it again on the same ones). */
  readonly ports: { readonly router: number; readonly admin: number; readonly page: number };
  /** Stops the whole demo (SIGTERM) and waits until it exited. */
  stop(): Promise<void>;
  /** `POST /nodes/{id}/drain` on the router's admin API. */
  drain(nodeId: string): Promise<void>;
  /** The node that owns a user's shard now (router `/lookup`). */
  ownerOf(userId: string): Promise<string>;
}

/** The demo (router + 3 nodes, in-process bus, authentication on), its page on a free port. */
export async function startDemo(t: Cleanup, env: Record<string, string> = {}): Promise<DemoCluster> {
  const demo = await forkService(t, 'demo-page', 'demo/src/main.ts', {
    CHAT_ROUTER_PORT: '0',
    CHAT_ROUTER_ADMIN_PORT: '0',
    CHAT_DEMO_PAGE_PORT: '0',
    CHAT_AUTH_MODE: 'jwt',
    CHAT_AUTH_HS256_SECRET: PAGE_SECRET,
    ...env,
  });
  const adminUrl = `http://127.0.0.1:${String(demo.ready.adminPort)}`;
  const pageUrl = String(demo.ready.pageUrl);
  return {
    pageUrl,
    adminUrl,
    ports: {
      router: Number(demo.ready.port),
      admin: Number(demo.ready.adminPort),
      page: Number(new URL(pageUrl).port),
    },
    async stop() {
      demo.child.kill('SIGTERM');
      await demo.exited;
    },
    async drain(nodeId) {
      const answer = await fetch(`${adminUrl}/nodes/${nodeId}/drain`, { method: 'POST' });
      if (!answer.ok) throw new Error(`drain ${nodeId}: ${answer.status} ${await answer.text()}`);
    },
    async ownerOf(userId) {
      const answer = await fetch(`${adminUrl}/lookup?key=${encodeURIComponent(userId)}`);
      return ((await answer.json()) as { owner: string }).owner;
    },
  };
}

export async function launchBrowser(t: Cleanup): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`no chromium at ${CHROMIUM}: apt-get install chromium`);
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-background-networking', '--disable-dev-shm-usage'],
  });
  t.after(() => browser.close());
  return browser;
}

/** What a page shows of one message. */
export interface ShownMessage {
  readonly out: boolean;
  readonly body: string;
  readonly id: string | undefined;
  readonly status: string;
}

/** What the page exposes as `window.chatDemo` (demo/web/src/app.ts). */
interface DemoHandle {
  readonly states: { state: string; at: number }[];
  readonly tokens: number;
  readonly lastReconnectMs?: number;
}

/** One user's page: signed in, its connection open. */
export class ChatPage {
  private constructor(
    readonly page: Page,
    readonly userId: string,
  ) {}

  static async open(browser: Browser, pageUrl: string, userId: string, query = ''): Promise<ChatPage> {
    // A context per user: separate storage, like two browser profiles.
    const context = await browser.newContext({ viewport: { width: 960, height: 600 } });
    const page = await context.newPage();
    const chat = new ChatPage(page, userId);
    page.on('pageerror', (err) => chat.errors.push(err.message));
    await page.goto(`${pageUrl}?user=${encodeURIComponent(userId)}${query}`);
    await chat.waitOpen();
    return chat;
  }

  /** Uncaught errors in the page's script. */
  readonly errors: string[] = [];

  handle(): Promise<DemoHandle> {
    return this.page.evaluate(() => {
      const h = (globalThis as unknown as { chatDemo: DemoHandle }).chatDemo;
      return {
        states: h.states,
        tokens: h.tokens,
        ...(h.lastReconnectMs === undefined ? {} : { lastReconnectMs: h.lastReconnectMs }),
      };
    });
  }

  connectionState(): Promise<string | undefined> {
    return this.page
      .locator('#conn')
      .getAttribute('data-state')
      .then((s) => s ?? undefined);
  }

  async waitOpen(timeoutMs = 15_000): Promise<void> {
    await pollUntil(async () => (await this.connectionState()) === 'open', {
      timeoutMs,
      what: `${this.userId}'s page to be connected`,
    });
  }

  /** Opens the conversation with a user (typed in, as when they are not in the online list yet). */
  async chatWith(userId: string): Promise<void> {
    await this.page.fill('#add-user', userId);
    await this.page.press('#add-user', 'Enter');
    await pollUntil(async () => (await this.page.textContent('#peer')) === `Chat with ${userId}`, {
      what: `${this.userId}'s page to open the chat with ${userId}`,
    });
  }

  /** Types a message into the open conversation and presses Enter. */
  async type(body: string): Promise<void> {
    await this.page.fill('#body', body);
    await this.page.press('#body', 'Enter');
  }

  /** The messages the open conversation shows. */
  messages(): Promise<ShownMessage[]> {
    return this.page.locator('#messages li').evaluateAll((items: unknown[]) =>
      items.map((item) => {
        // A DOM element (this file is compiled without the DOM library).
        const li = item as {
          classList: { contains(name: string): boolean };
          querySelector(selector: string): { textContent: string | null } | null;
          getAttribute(name: string): string | null;
        };
        return {
          out: li.classList.contains('out'),
          body: li.querySelector('.body')?.textContent ?? '',
          id: li.getAttribute('data-id') ?? undefined,
          status: li.getAttribute('data-status') ?? '',
        };
      }),
    );
  }

  async close(): Promise<void> {
    await this.page.context().close();
  }
}
