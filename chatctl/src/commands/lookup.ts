import { SHAPES, type KeyAnswer, type UserAnswer } from '../admin-types.js';
import { CliError, EXIT, type ExitCode } from '../exit-codes.js';
import { HttpError, clientsFor, type ConnectOptions } from '../http.js';

/** A user (with presence), or an affinity key alone (shard and owner only). */
export type LookupRequest = { readonly user: string; readonly key?: string } | { readonly key: string };

/** `chatctl lookup --json`: the router's `/users/{id}` answer plus `connected`, or its `/lookup` answer. */
export type LookupReport =
  (UserAnswer & { readonly connected: boolean }) | (KeyAnswer & { readonly user?: undefined });

/**
 * Where a user or key goes and where the user is: the key's shard, its owner and the owner-table version
 * (first router), and for a user what the nodes say (`GET /users/{id}`): the nodes holding sessions of
 * the user, and where their presence directories (Kafka) place it. The key of a user is the user id unless
 * `key` names its affinity key (a token claim or query parameter).
 */
export async function lookup(o: ConnectOptions, request: LookupRequest): Promise<LookupReport> {
  const [first] = clientsFor(o);
  if (!first) throw new Error('unreachable: clientsFor returns at least one client');
  try {
    if ('user' in request) {
      const query = request.key === undefined ? '' : `?key=${encodeURIComponent(request.key)}`;
      const answer = await first.get<UserAnswer>(
        `/users/${encodeURIComponent(request.user)}${query}`,
        SHAPES.user,
      );
      return { ...answer, connected: answer.sessions.length > 0 };
    }
    return await first.get<KeyAnswer>(`/lookup?key=${encodeURIComponent(request.key)}`, SHAPES.key);
  } catch (err) {
    if (
      err instanceof HttpError &&
      (err.is(400, 'ROUTER_ERR_BAD_USER_ID') || err.is(400, 'ROUTER_ERR_BAD_AFFINITY'))
    ) {
      throw new CliError(EXIT.usage, `not a valid user id or key (${String(err.body.error)})`);
    }
    throw err;
  }
}

/** A user with no session anywhere: 5 (not found); otherwise 0. */
export function lookupExitCode(r: LookupReport): ExitCode {
  return 'connected' in r && !r.connected ? EXIT.notFound : EXIT.ok;
}

export function renderLookup(r: LookupReport): string {
  const lines = [
    ...(r.user === undefined ? [] : [`user     ${r.user}`]),
    `key      ${r.key}`,
    `shard    ${r.shard}`,
    `owner    ${r.owner ?? '- (no member in the table)'}`,
    `table    ${r.ownerTableVersion}`,
  ];
  if ('connected' in r) {
    lines.push(
      `sessions ${r.sessions.length === 0 ? 'none (not connected)' : r.sessions.map((s) => `${s.node} (${s.sessions})`).join(', ')}`,
      `presence ${r.presence.length === 0 ? 'no node' : r.presence.join(', ')} (what the nodes' presence directories say)`,
    );
    if (r.sessions.length > 0 && r.owner !== null && !r.sessions.some((s) => s.node === r.owner))
      lines.push(`note     connected away from its shard's owner (moving, or placed by another key)`);
    for (const u of r.unanswered) lines.push(`warning  node ${u.node} did not answer: ${u.error}`);
  }
  return `${lines.join('\n')}\n`;
}
