import { setTimeout as delay } from 'node:timers/promises';
import { SHAPES, type MembersAnswer } from '../admin-types.js';
import { EXIT, type ExitCode } from '../exit-codes.js';
import { clientsFor, type AdminClient, type ConnectOptions } from '../http.js';
import type { Progress } from '../progress.js';
import { renderTable } from '../table.js';

/** How long `status --wait-version` waits unless `--timeout` says otherwise (as drain does). */
export const DEFAULT_VERSION_WAIT_MS = 300_000;
const POLL_MS = 250;
/** Requests may run this much past the wait's end, so the last look is answered, not cut. */
const REQUEST_GRACE_MS = 5000;

/** One member as `status` reports it (connections summed over the routers given). */
export interface MemberStatus {
  readonly id: string;
  readonly url: string;
  /** `active`; `draining` (its heartbeat or /readyz says so); `drained` (drained through the admin API). */
  readonly state: 'active' | 'draining' | 'drained';
  /**
   * The node's own readiness, as its /readyz said to the first router: accepting connections and its bus
   * (Kafka) works. A router older than this field: the router's probe (`accepting`).
   */
  readonly ready: boolean;
  /** The router's probe found it accepting connections: it is placed on (in the owner table if active). */
  readonly accepting: boolean;
  /** Its bus (Kafka) works, as its /readyz said; null when unknown (no answer yet, an older router). */
  readonly bus: boolean | null;
  /** Its HTTP listener answers (a draining node is alive while it closes its sessions). */
  readonly alive: boolean;
  readonly inRing: boolean;
  readonly weight: number;
  readonly shards: number;
  readonly connections: number;
}

/** `chatctl status --json`. */
export interface StatusReport {
  /** Every router ready; every member that is not draining alive, accepting, ready and with its bus. */
  readonly healthy: boolean;
  /**
   * Every router given has the same owner-table version and the same members with the same weight and
   * place in the table (draining and drained count as one state: see `notes`).
   */
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
  /** Differences that are no problem (a member drained through one router, draining on another). */
  readonly notes: readonly string[];
  /** With `--wait-version V`: the version waited for, whether the cluster got there, and how long it took. */
  readonly wait?: { readonly version: string; readonly reached: boolean; readonly elapsedMs: number };
}

const stateOf = (m: MembersAnswer['members'][number]): MemberStatus['state'] =>
  m.adminDrained ? 'drained' : m.draining ? 'draining' : 'active';

/**
 * What routers must agree on about a member: its weight, its place in the table, and whether it is
 * active or leaving. Drained (through this router's admin API) and draining (the node said so) are the
 * same here: a drain given to some routers only shows as `drained` on those and `draining` on the others
 * (they learn it from the node's heartbeat), with the same owner table.
 */
const agreementOf = (m: MembersAnswer['members'][number]) =>
  `${m.id}:${m.weight}:${stateOf(m) === 'active' ? 'active' : 'leaving'}:${m.inRing ? 'in' : 'out'}`;

/** What a router's member view says in one comparable string. */
const viewOf = (a: MembersAnswer) => a.members.map(agreementOf).join(',');

/**
 * The cluster as the routers see it: members with state, readiness, shards and connections (summed over
 * the routers), each router's readiness, and whether the routers agree.
 */
export async function status(o: ConnectOptions): Promise<StatusReport> {
  return reportOf(await lookAt(clientsFor(o)), o.routers);
}

function lookAt(clients: readonly AdminClient[]): Promise<MembersAnswer[]> {
  return Promise.all(clients.map((c) => c.get<MembersAnswer>('/members', SHAPES.members)));
}

/** The report from each router's `/members` answer, in the order of `urls` (pure: unit-tested). */
export function reportOf(answers: readonly MembersAnswer[], urls: readonly string[]): StatusReport {
  const first = answers[0];
  if (!first) throw new Error('unreachable: clientsFor returns at least one client');
  const problems: string[] = [];
  const notes: string[] = [];
  const connections = new Map<string, number>();
  for (const a of answers)
    for (const m of a.members) connections.set(m.id, (connections.get(m.id) ?? 0) + m.connections);
  const members = first.members.map((m): MemberStatus => ({
    id: m.id,
    url: m.url,
    state: stateOf(m),
    ready: m.ready ?? m.healthy,
    accepting: m.healthy,
    bus: m.bus ?? null,
    alive: m.reachable,
    inRing: m.inRing,
    weight: m.weight,
    shards: m.shards,
    connections: connections.get(m.id) ?? 0,
  }));
  const routers = answers.map((a, i) => ({
    url: urls[i] ?? '',
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
    else if (!m.accepting) problems.push(`member ${m.id} not ready (not accepting connections)`);
    else if (m.bus === false)
      problems.push(`member ${m.id} not ready: its bus (Kafka) is down (cross-node messages fail)`);
    else if (!m.ready) problems.push(`member ${m.id} not ready (its /readyz says so)`);
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
  } else {
    for (const m of first.members) {
      const states = answers.map((a) => stateOf(a.members.find((x) => x.id === m.id) ?? m));
      if (states.some((s) => s !== states[0])) {
        notes.push(
          `member ${m.id} is ${routers.map((r, i) => `${states[i] ?? '?'} on ${r.url}`).join(', ')}: ` +
            'drained through some routers only (the others follow the node); the routers agree',
        );
      }
    }
  }
  return {
    healthy,
    agree,
    ownerTableVersion: first.ownerTableVersion,
    shards: first.shards,
    routers,
    members,
    problems,
    notes,
  };
}

/** True when the report would exit 0 and every router has owner table `version`. */
const reached = (r: StatusReport, version: string) =>
  r.agree && r.healthy && r.routers.every((x) => x.ownerTableVersion === version);

/**
 * `status --wait-version V`: polls every router until each has owner table V (the `afterVersion` of a
 * plan), the routers agree and the cluster is healthy, or `timeoutMs` (default 300 s) ran out. Returns
 * the last look with `wait` saying which; a router that cannot be reached ends it (exit 3) as in `status`.
 */
export async function waitForVersion(
  o: ConnectOptions & { readonly version: string; readonly progress?: Progress },
): Promise<StatusReport> {
  const started = Date.now();
  const waitMs = o.timeoutMs ?? DEFAULT_VERSION_WAIT_MS;
  const clients = clientsFor({ ...o, timeoutMs: waitMs + REQUEST_GRACE_MS });
  const deadline = started + waitMs;
  for (;;) {
    const r = reportOf(await lookAt(clients), o.routers);
    const there = r.routers.filter((x) => x.ownerTableVersion === o.version).length;
    o.progress?.update(
      there,
      r.routers.length,
      `routers with owner table ${o.version}${there === r.routers.length && !reached(r, o.version) ? ', not yet healthy' : ''}`,
    );
    const done = reached(r, o.version);
    if (done || Date.now() + POLL_MS > deadline) {
      o.progress?.end();
      return { ...r, wait: { version: o.version, reached: done, elapsedMs: Date.now() - started } };
    }
    await delay(POLL_MS);
  }
}

/**
 * With `--wait-version`: 0 when reached, 1 when not in time. Else 6 when the routers disagree, 1 when
 * something is not ready or alive, 0 otherwise.
 */
export function statusExitCode(r: StatusReport): ExitCode {
  if (r.wait) return r.wait.reached ? EXIT.ok : EXIT.condition;
  if (!r.agree) return EXIT.disagree;
  return r.healthy ? EXIT.ok : EXIT.condition;
}

const yesNo = (b: boolean | null) => (b === null ? '?' : b ? 'yes' : 'no');

/** The human view: a members table, then one line per router, then the problems and notes. */
export function renderStatus(r: StatusReport): string {
  const table = renderTable(
    [
      { header: 'MEMBER' },
      { header: 'STATE' },
      { header: 'READY' },
      { header: 'BUS' },
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
      yesNo(m.bus),
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
    ...r.notes.map((n) => `note: ${n}`),
    ...(r.wait
      ? [
          r.wait.reached
            ? `owner table ${r.wait.version} reached in ${(r.wait.elapsedMs / 1000).toFixed(1)} s`
            : `owner table ${r.wait.version} NOT reached after ${(r.wait.elapsedMs / 1000).toFixed(1)} s`,
        ]
      : []),
  ];
  return `${table}\n${lines.join('\n')}\n`;
}
