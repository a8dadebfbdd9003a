// The demo's browser chat page: sign in (the demo mints a development token), see who is online, chat with
// delivery states, and watch the connection state. All the connection logic (reconnects, queued sends,
// token refresh, resume, duplicate ids) is the SDK's: this file only draws.
import { connect, ChatError, type ChatClient } from '@chat/client';

interface DemoConfig {
  /** The router's public WebSocket endpoint, e.g. ws://127.0.0.1:8080. */
  readonly routerUrl: string;
}

/** One line of a conversation. */
interface Item {
  readonly out: boolean;
  readonly body: string;
  /** Server message id: once an incoming message arrives, or once a send is answered. */
  id?: string;
  /** sending, delivered, accepted, offline, failed. */
  status: string;
  detail?: string;
  readonly at: number;
}

/** What tests (and the curious, from the console) can read: `window.chatDemo`. */
interface DemoHandle {
  client?: ChatClient;
  /** Every connection state the page went through, with its time. */
  readonly states: { state: string; at: number }[];
  /** Token requests made (the first, and each refresh). */
  tokens: number;
  /** How long the last reconnect took, from leaving `open` to `open` again (ms). */
  lastReconnectMs?: number;
}

const $ = <T extends HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} missing`);
  return el as T;
};

const handle: DemoHandle = { states: [], tokens: 0 };
(window as unknown as { chatDemo: DemoHandle }).chatDemo = handle;

const params = new URLSearchParams(location.search);
/** `?ttl=SECONDS`: the lifetime of the tokens the page asks for (short ones show the in-band refresh). */
const ttl = Number(params.get('ttl') ?? '600');

const conversations = new Map<string, Item[]>();
const unread = new Map<string, number>();
let online: string[] = [];
let peer: string | undefined;
let me = '';

async function fetchToken(userId: string): Promise<string> {
  handle.tokens++;
  const answer = await fetch('/demo/token', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ user: userId, ttl }),
  });
  const body = (await answer.json()) as { token?: string | null; error?: string; message?: string };
  if (!answer.ok) throw new Error(body.message ?? body.error ?? `token request failed (${answer.status})`);
  // null: the cluster runs without authentication.
  return body.token ?? '';
}

function conversation(user: string): Item[] {
  let items = conversations.get(user);
  if (!items) conversations.set(user, (items = []));
  return items;
}

function statusText(item: Item): string {
  const time = new Date(item.at).toLocaleTimeString();
  if (!item.out) return time;
  switch (item.status) {
    case 'sending':
      return `${time} · sending…`;
    case 'delivered':
      return `${time} · delivered`;
    case 'accepted':
      return `${time} · accepted (on its way)`;
    case 'offline':
      return `${time} · not delivered: offline`;
    default:
      return `${time} · failed${item.detail ? `: ${item.detail}` : ''}`;
  }
}

function renderMessages(): void {
  const list = $<HTMLOListElement>('messages');
  list.replaceChildren();
  for (const item of peer ? conversation(peer) : []) {
    const li = document.createElement('li');
    li.className = item.out ? 'out' : 'in';
    li.dataset.status = item.status;
    if (item.id) li.dataset.id = item.id;
    const text = document.createElement('span');
    text.className = 'body';
    text.textContent = item.body;
    const meta = document.createElement('span');
    meta.className = 'meta';
    meta.textContent = statusText(item);
    li.append(text, meta);
    list.append(li);
  }
  list.scrollTop = list.scrollHeight;
}

function renderContacts(): void {
  const names = new Set(online.filter((u) => u !== me));
  // People you talk to stay in the list when they go offline.
  for (const user of conversations.keys()) names.add(user);
  const list = $<HTMLUListElement>('contacts');
  list.replaceChildren();
  for (const user of [...names].sort()) {
    const li = document.createElement('li');
    const button = document.createElement('button');
    button.type = 'button';
    button.dataset.user = user;
    button.textContent = `${online.includes(user) ? '● ' : '○ '}${user}`;
    button.setAttribute('aria-current', String(user === peer));
    const count = unread.get(user) ?? 0;
    if (count > 0) {
      const badge = document.createElement('span');
      badge.className = 'unread';
      badge.textContent = String(count);
      button.append(badge);
    }
    button.addEventListener('click', () => select(user));
    li.append(button);
    list.append(li);
  }
}

function select(user: string): void {
  peer = user;
  unread.delete(user);
  $('peer').textContent = `Chat with ${user}`;
  $<HTMLInputElement>('body').disabled = false;
  $<HTMLButtonElement>('compose').querySelector('button')!.disabled = false;
  renderContacts();
  renderMessages();
  $<HTMLInputElement>('body').focus();
}

async function refreshOnline(): Promise<void> {
  try {
    const answer = await fetch('/demo/online');
    if (answer.ok) online = ((await answer.json()) as { users: string[] }).users;
  } catch {
    // The demo is restarting: keep the last list.
  }
  renderContacts();
}

function send(to: string, body: string, client: ChatClient): void {
  const item: Item = { out: true, body, status: 'sending', at: Date.now() };
  conversation(to).push(item);
  renderMessages();
  client.send(to, body).then(
    (ack) => {
      item.id = ack.id;
      item.status = ack.status;
      renderMessages();
    },
    (err: unknown) => {
      item.status = 'failed';
      item.detail = err instanceof ChatError ? err.code : String(err);
      renderMessages();
    },
  );
}

function showState(state: string, detail?: string): void {
  const pill = $('conn');
  pill.dataset.state = state;
  pill.textContent = detail ? `${state} · ${detail}` : state;
}

function signIn(userId: string, config: DemoConfig): void {
  me = userId;
  $('signin').hidden = true;
  $('chat').hidden = false;
  $('me').textContent = `signed in as ${userId}`;
  const client = connect({ url: config.routerUrl, userId, token: () => fetchToken(userId) });
  handle.client = client;
  /** When the last open connection was lost: only a real reconnect (open, lost, open) is timed. */
  let leftOpenAt: number | undefined;
  let previous = '';
  client.on('state', (e) => {
    handle.states.push({ state: e.state, at: Date.now() });
    const wasOpen = previous === 'open';
    previous = e.state;
    if (e.state === 'open') {
      if (leftOpenAt !== undefined) handle.lastReconnectMs = Date.now() - leftOpenAt;
      leftOpenAt = undefined;
      showState(
        'open',
        handle.lastReconnectMs === undefined ? undefined : `back after ${handle.lastReconnectMs} ms`,
      );
      void refreshOnline();
      return;
    }
    // Failed first attempts are not a reconnect (a refusal is never reported open: chat.refusal).
    if (e.state === 'reconnecting' && wasOpen) leftOpenAt = Date.now();
    if (e.state === 'closed') leftOpenAt = undefined;
    // `||`: a dropped connection (1006) has an empty reason; show its code then. An attempt that failed
    // before connecting (the token request) has only its error.
    const why = e.reason || (e.code === undefined ? e.error?.code : `code ${e.code}`);
    const when = e.retryInMs === undefined ? undefined : `retry in ${(e.retryInMs / 1000).toFixed(1)} s`;
    showState(e.state, [why, when].filter(Boolean).join(', ') || undefined);
  });
  client.on('message', (m) => {
    conversation(m.from).push({ out: false, body: m.body, id: m.id, status: 'received', at: m.ts });
    if (m.from === peer) renderMessages();
    else unread.set(m.from, (unread.get(m.from) ?? 0) + 1);
    renderContacts();
  });
  $('compose').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const input = $<HTMLInputElement>('body');
    if (!peer || input.value === '') return;
    send(peer, input.value, client);
    input.value = '';
  });
  $('add-contact').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const input = $<HTMLInputElement>('add-user');
    const user = input.value.trim();
    if (/^[A-Za-z0-9._@-]{1,128}$/.test(user) && user !== me) select(user);
    input.value = '';
  });
  void refreshOnline();
  setInterval(() => void refreshOnline(), 2000);
}

async function main(): Promise<void> {
  const config = (await (await fetch('/demo/config')).json()) as DemoConfig;
  const start = (userId: string): void => {
    // One token request up front, so a refused sign-in (a bad id) is said here rather than as reconnects.
    fetchToken(userId).then(
      () => signIn(userId, config),
      (err: unknown) => {
        const box = $('signin-error');
        box.textContent = err instanceof Error ? err.message : String(err);
        box.hidden = false;
      },
    );
  };
  $('signin').addEventListener('submit', (ev) => {
    ev.preventDefault();
    start($<HTMLInputElement>('user').value.trim());
  });
  const preset = params.get('user');
  if (preset) start(preset);
  else $<HTMLInputElement>('user').focus();
}

void main();
