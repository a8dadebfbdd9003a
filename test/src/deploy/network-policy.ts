// Kubernetes NetworkPolicy semantics (kubernetes.io/docs/concepts/services-networking/network-policies),
// enough to evaluate deploy/k8s/networkpolicy.yaml without a cluster: `matchLabels` selectors, pod and
// namespace selectors (alone or together in one peer), `ipBlock` peers for addresses outside the cluster,
// ports with protocols. A pod selected by no policy of a direction is open in that direction; a pod
// selected by some is open only to what one of them allows; a connection needs both the source's egress
// and the destination's ingress. Anything else in a policy (matchExpressions, endPort, named ports) throws
// rather than being misread.

export type Labels = Readonly<Record<string, string>>;

/** A pod (namespace and labels) or an address outside the cluster. */
export type Endpoint =
  | { readonly kind: 'pod'; readonly namespace: string; readonly labels: Labels }
  | { readonly kind: 'external' };

export interface Connection {
  readonly port: number;
  readonly protocol?: 'TCP' | 'UDP';
}

interface Selector {
  matchLabels?: Record<string, string>;
  matchExpressions?: unknown;
}
interface Peer {
  podSelector?: Selector;
  namespaceSelector?: Selector;
  ipBlock?: { cidr: string; except?: string[] };
}
interface PortSpec {
  port?: number | string;
  protocol?: string;
  endPort?: number;
}
interface Rule {
  from?: Peer[];
  to?: Peer[];
  ports?: PortSpec[];
}
export interface NetworkPolicy {
  kind: 'NetworkPolicy';
  metadata: { name: string; namespace?: string };
  spec: {
    podSelector: Selector;
    policyTypes?: ('Ingress' | 'Egress')[];
    ingress?: Rule[];
    egress?: Rule[];
  };
}

function matches(selector: Selector, labels: Labels): boolean {
  if (selector.matchExpressions !== undefined) throw new Error('matchExpressions is not evaluated');
  return Object.entries(selector.matchLabels ?? {}).every(([k, v]) => labels[k] === v);
}

/** Namespaces carry the automatic `kubernetes.io/metadata.name` label. */
const namespaceLabels = (namespace: string): Labels => ({ 'kubernetes.io/metadata.name': namespace });

function types(policy: NetworkPolicy): ('Ingress' | 'Egress')[] {
  return policy.spec.policyTypes ?? (policy.spec.egress ? ['Ingress', 'Egress'] : ['Ingress']);
}

function peerMatches(peer: Peer, policyNamespace: string, other: Endpoint): boolean {
  if (peer.ipBlock) return other.kind === 'external';
  if (other.kind === 'external') return false;
  const nsOk = peer.namespaceSelector
    ? matches(peer.namespaceSelector, namespaceLabels(other.namespace))
    : other.namespace === policyNamespace;
  const podOk = peer.podSelector ? matches(peer.podSelector, other.labels) : true;
  return nsOk && podOk;
}

function portMatches(ports: PortSpec[] | undefined, c: Connection): boolean {
  if (!ports || ports.length === 0) return true;
  return ports.some((p) => {
    if (p.endPort !== undefined || typeof p.port === 'string')
      throw new Error('endPort and named ports are not evaluated');
    return (p.port === undefined || p.port === c.port) && (p.protocol ?? 'TCP') === (c.protocol ?? 'TCP');
  });
}

/** Whether `direction` traffic at `pod` with `other` at the other end is allowed by `policies`. */
function allowedAt(
  policies: readonly NetworkPolicy[],
  pod: Endpoint,
  other: Endpoint,
  c: Connection,
  direction: 'Ingress' | 'Egress',
): boolean {
  if (pod.kind === 'external') return true;
  const selecting = policies.filter(
    (p) =>
      (p.metadata.namespace ?? 'default') === pod.namespace &&
      types(p).includes(direction) &&
      matches(p.spec.podSelector, pod.labels),
  );
  if (selecting.length === 0) return true;
  return selecting.some((p) =>
    ((direction === 'Ingress' ? p.spec.ingress : p.spec.egress) ?? []).some((rule) => {
      const peers = direction === 'Ingress' ? rule.from : rule.to;
      const peerOk =
        !peers || peers.length === 0 || peers.some((peer) => peerMatches(peer, pod.namespace, other));
      return peerOk && portMatches(rule.ports, c);
    }),
  );
}

/** Whether a connection from `source` to `destination` on `c` is allowed. */
export function allowed(
  policies: readonly NetworkPolicy[],
  source: Endpoint,
  destination: Endpoint,
  c: Connection,
): boolean {
  return (
    allowedAt(policies, source, destination, c, 'Egress') &&
    allowedAt(policies, destination, source, c, 'Ingress')
  );
}
