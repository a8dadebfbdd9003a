import type { CommandName } from './args.js';

const GLOBAL = `Global options (anywhere on the line):
  --router URL      a router's admin API; repeat for several routers (default: CHAT_ROUTER_ADMIN_URL,
                    comma-separated, else http://127.0.0.1:8090)
  --token T         the admin token (default: CHAT_ROUTER_ADMIN_TOKEN)
  --token-file F    read the token from a file
  --json            print one JSON document (stable shapes: docs/chatctl.md) instead of tables
  --timeout MS      give up after MS milliseconds (default 10000; drain, undrain and
                    status --wait-version: 300000)
  -h, --help        this help; chatctl COMMAND --help for a command's

Exit codes: 0 ok, 1 the condition is false (unhealthy, not done in time), 2 usage error, 3 router
unreachable or not an admin API, 4 token refused, 5 not found (node, user), 6 routers disagree,
70 chatctl failed (a bug).
`;

const MAIN = `chatctl: the operators' command line for a chat cluster, over the routers' admin API.

Usage: chatctl [global options] COMMAND [arguments]

Commands:
  status [--wait-version V]     members, readiness, owner table, whether the routers agree
  plan add NODE [--weight W]    what would move if NODE joined (nothing is changed)
  plan remove NODE              what would move if NODE left (nothing is changed)
  drain NODE [--no-wait]        take NODE out and wait until its connections moved
  undrain NODE [--no-wait]      bring NODE back and wait until every router has it
  lookup USER [--key KEY]       a user's shard, owner, and where it is connected
  lookup --key KEY              an affinity key's shard and owner
  shards [--top N]              the shard table, hot shards first

${GLOBAL}`;

const COMMAND_HELP: Record<CommandName, string> = {
  status: `Usage: chatctl status [--wait-version V]

Members (state, ready, bus, alive, weight, shards owned, connections summed over the routers given), each
router's readiness and owner-table version, and whether the routers agree (same owner-table version,
same members with the same weight and place in the table; drained on one router and draining on another
is agreement, shown as a note). READY is the node's own /readyz: accepting and its bus (Kafka) works. A
draining or drained member is not counted as unhealthy.
--wait-version V: wait until every router has owner table V (a plan's afterVersion), the routers agree
and the cluster is healthy, or --timeout (default 300000 ms).
Exit: 0 healthy (or V reached), 1 a router or an active member not ready, alive or with its bus (or V not
reached in time), 6 routers disagree.
`,
  plan: `Usage: chatctl plan add NODE [--weight W]
       chatctl plan remove NODE

What would move if NODE joined (weight W, default 1) or left: the shards that change owner (from, to),
the connections on them (summed over the routers given), and each node's share of the shards before and
after. The first router computes the owner tables with the code it places by. Nothing is changed.
Exit: 0, 5 NODE already a member (add) or not a member (remove).
`,
  drain: `Usage: chatctl drain NODE [--no-wait]

Drains NODE on every router given: it leaves the owner table, its shards go to the others, and it closes
its sessions itself (4002), which reconnect to the new owners. Waits (progress on stderr) until NODE has
no connection on any router and owns no shard, or --timeout (default 300000 ms).
Exit: 0 done (or --no-wait), 1 not done in time, 5 unknown node.
`,
  undrain: `Usage: chatctl undrain NODE [--no-wait]

Brings a drained NODE back on every router given and waits until every router has it in its owner table
with its shards, or --timeout (default 300000 ms).
Exit: 0 done (or --no-wait), 1 not done in time (is the node ready?), 5 unknown node.
`,
  lookup: `Usage: chatctl lookup USER [--key KEY]
       chatctl lookup --key KEY

A user's shard and owner (placed by KEY when its affinity key is not the user id) and where it is:
the nodes holding its sessions, and where the nodes' presence directories place it. With --key alone:
the key's shard, owner and owner-table version.
Exit: 0, 5 the user has no session anywhere.
`,
  shards: `Usage: chatctl shards [--top N] [--interval MS]

The shard table: shard, owner, connections (summed over the routers given) and messages per second,
hottest first (messages per second, then connections). The rate is taken from two samples MS apart
(default 1000) of the nodes' per-shard message counts. --top N shows the N hottest (default 20, 0: all).
`,
};

/** `chatctl --help`, or a command's help. */
export function helpText(command?: CommandName): string {
  return command ? `${COMMAND_HELP[command]}\n${GLOBAL}` : MAIN;
}
