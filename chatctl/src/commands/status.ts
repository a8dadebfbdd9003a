import type { MembersAnswer } from '../admin-types.js';
import { EXIT, type ExitCode } from '../exit-codes.js';
import { clientsFor, type ConnectOptions } from '../http.js';
import { renderTable } from '../table.js';

/** One member as `status` reports it (connections summed over the routers given). */
export interface MemberStatus {
  readonly id: string;
  readonly url: string;
  /** `active`; `draining` (its heartbeat or /readyz says so); `drained` (drained through the admin API). */
  readonly state: 'active' | 'draining' | 'drained';
  /** The router's last probe found it accepting connections. */
  readonly ready: boolean;
  /** Its HTTP listener answers (a draining node is alive while it closes its sessions). */
  readonly alive: boolean;
  readonly inRing: boolean;
  readonly weight: number;
  readonly shards: number;
  readonly connections: number;
}

/** `chatctl status --json`. */
export interface StatusReport {
  /** Every router ready, every member that is not draining ready and alive. */
  readonly healthy: boolean;
  /** Every router given has the same owner-table version and the same members (state, in ring). */
  readonly agree: boolean;
  readonly ownerTableVersion: string;
  readonly shards: number;
  readonly routers: readonly {
    readonly url: string;
    readonly ready: boolean | null;
    readonly reason: string | null;
    readonly ownerTableVersion: string;
    readonly members: number;
  }[];
  readonly members: readonly MemberStatus[];
  /** One line per problem found (what made `healthy` or `agree` false). */
  readonly problems: readonly string[];
}

const stateOf = (m: MembersAnswer['members'][number]): MemberStatus['state'] =>
  m.adminDrained ? 'drained' : m.draining ? 'draining' : 'active';

/** What a router's member view says in one comparable string. */
const viewOf = (a: MembersAnswer) =>
  a.members.map((m) => `${m.id}:${m.weight}:${stateOf(m)}:${m.inRing}`).join(',');

/**
 * The cluster as the routers see it: members with state, readiness, shards and connections (summed over
 * the routers), each router's readiness, and whether the routers agree.
 */
export async function status(o: ConnectOptions): Promise<StatusReport> {
  const answers = await Promise.all(clientsFor(o).map((c) => c.get<MembersAnswer>('/members')));
  const first = answers[0];
  if (!first) throw new Error('unreachable: clientsFor returns at least one client');
  const problems: string[] = [];
  const connections = new Map<string, number>();
  for (const a of answers)
    for (const m of a.members) connections.set(m.id, (connections.get(m.id) ?? 0) + m.connections);
  const members = first.members.map((m): MemberStatus => ({
    id: m.id,
    url: m.url,
    state: stateOf(m),
    ready: m.healthy,
    alive: m.reachable,
    inRing: m.inRing,
    weight: m.weight,
    shards: m.shards,
    connections: connections.get(m.id) ?? 0,
  }));
  const routers = answers.map((a, i) => ({
    url: o.routers[i] ?? '',
    ready: a.router?.ready ?? null,
    reason: a.router?.reason ?? null,
    ownerTableVersion: a.ownerTableVersion,
    members: a.members.length,
  }));
  for (const r of routers)
    if (r.ready === false) problems.push(`router ${r.url} not ready (${r.reason ?? 'unknown'})`);
  for (const m of members) {
    if (m.state !== 'active') continue;
    if (!m.alive) problems.push(`member ${m.id} not alive (its HTTP listener does not answer)`);
    else if (!m.ready) problems.push(`member ${m.id} not ready (not accepting connections)`);
  }
  if (members.length === 0) problems.push('no member');
  const healthy = problems.length === 0;
  const agree = answers.every(
    (a) => a.ownerTableVersion === first.ownerTableVersion && viewOf(a) === viewOf(first),
  );
  if (!agree) {
    problems.push(
      `routers disagree: ${routers.map((r, i) => `${r.url} has ${r.ownerTableVersion} [${viewOf(answers[i] ?? first)}]`).join('; ')}`,
    );
  }
  return {
    healthy,
    agree,
    ownerTableVersion: first.ownerTableVersion,
    shards: first.shards,
    routers,
    members,
    problems,
  };
}

/** 6 when the routers disagree, 1 when something is not ready or alive, else 0. */
export function statusExitCode(r: StatusReport): ExitCode {
  if (!r.agree) return EXIT.disagree;
  return r.healthy ? EXIT.ok : EXIT.condition;
}

const yesNo = (b: boolean | null) => (b === null ? '?' : b ? 'yes' : 'no');

/** The human view: a members table, then one line per router, then the problems. */
export function renderStatus(r: StatusReport): string {
  const table = renderTable(
    [
      { header: 'MEMBER' },
      { header: 'STATE' },
      { header: 'READY' },
      { header: 'ALIVE' },
      { header: 'WEIGHT', align: 'right' },
      { header: 'SHARDS', align: 'right' },
      { header: 'CONNECTIONS', align: 'right' },
      { header: 'URL' },
    ],
    r.members.map((m) => [
      m.id,
      m.state,
      yesNo(m.ready),
      yesNo(m.alive),
      String(m.weight),
      String(m.shards),
      String(m.connections),
      m.url,
    ]),
  );
  const lines = [
    `owner table ${r.ownerTableVersion} (${r.shards} shards)`,
    ...r.routers.map(
      (x) =>
        `router ${x.url}: ready ${yesNo(x.ready)}${x.reason ? ` (${x.reason})` : ''}, table ${x.ownerTableVersion}`,
    ),
    `routers agree: ${r.agree ? 'yes' : 'NO'}`,
    `healthy: ${r.healthy && r.agree ? 'yes' : 'NO'}`,
    ...r.problems.map((p) => `  - ${p}`),
  ];
  return `${table}\n${lines.join('\n')}\n`;
}
