import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SessionRegistry, type SessionLike } from './session-registry.js';

type Session = SessionLike & { readonly id: number };
const session = (id: number, userId: string): Session => ({ id, userId, connectionId: `r-${id}` });

test('first and last session of a user are reported; closing one session keeps the others', () => {
  const reg = new SessionRegistry<Session>();
  const phone = session(1, 'u');
  const laptop = session(2, 'u');
  assert.equal(reg.add(phone), true);
  assert.equal(reg.add(laptop), false);
  assert.equal(reg.add(laptop), false, 'adding twice is a no-op');
  assert.equal(reg.sessionCount, 2);
  assert.equal(reg.remove(phone), false);
  assert.deepEqual([...reg.sessionsOf('u')], [laptop]);
  assert.equal(reg.remove(phone), false, 'removing twice is a no-op');
  assert.equal(reg.remove(laptop), true);
  assert.equal(reg.has('u'), false);
  assert.equal(reg.sessionCount, 0);
  assert.equal(reg.sessionsOf('u').size, 0);
});

test('a reconnect elsewhere is a new session: closing the old one does not remove it', () => {
  const reg = new SessionRegistry<Session>();
  const old = session(1, 'u');
  const fresh = session(2, 'u');
  reg.add(old);
  reg.add(fresh);
  reg.remove(old);
  assert.equal(reg.has('u'), true);
  assert.equal(reg.userCount, 1);
});

test('sessions are found by the router connection ids they came with', () => {
  const reg = new SessionRegistry<Session>();
  reg.add(session(1, 'a'));
  reg.add(session(2, 'b'));
  reg.add({ ...session(3, 'c'), connectionId: undefined });
  assert.deepEqual(
    reg.byConnectionIds(new Set(['r-2', 'r-3', 'r-9'])).map((s) => s.id),
    [2],
  );
});
