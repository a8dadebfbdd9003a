// Membership settings for cluster tests: a node's heartbeat every 300 ms, and routers that notice a node
// joining or gone within about 2 s (the defaults take several times that), with no handshake limit in the
// way of a test's own reconnects. Spread into a test's node and router env, then add its own settings.

export const QUICK_NODE_ENV = {
  CHAT_NODE_HEARTBEAT_INTERVAL_MS: '300',
  CHAT_NODE_HEARTBEAT_TIMEOUT_MS: '2000',
} as const;

export const QUICK_ROUTER_ENV = {
  CHAT_ROUTER_MEMBER_TIMEOUT_MS: '2000',
  CHAT_ROUTER_PROBE_INTERVAL_MS: '300',
  CHAT_ROUTER_PROBE_FAILURES: '2',
  CHAT_ROUTER_HANDSHAKE_RATE_PER_SEC: '100000',
} as const;
