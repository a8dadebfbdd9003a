// deploy/k8s/networkpolicy.yaml, evaluated for every pair that matters: clients reach only the routers'
// public port (through the ingress controller), routers reach nodes, routers and nodes reach Kafka and
// DNS, Prometheus scrapes; the admin port, the nodes and Kafka are closed to everything else, including a
// pod someone starts in the chat namespace.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { k8sDocs } from './manifests.js';
import { allowed, type Connection, type Endpoint, type NetworkPolicy } from './network-policy.js';

const pod = (namespace: string, labels: Record<string, string>): Endpoint => ({
  kind: 'pod',
  namespace,
  labels,
});

/** The pods of the manifests, with the labels their templates give them. */
function manifestPods(): Record<'router' | 'node', Endpoint> {
  const labelsOf = (kind: string) => {
    const w = k8sDocs().find((d) => d.kind === kind) as
      | {
          metadata: { namespace: string };
          spec: { template: { metadata: { labels: Record<string, string> } } };
        }
      | undefined;
    assert.ok(w, kind);
    return pod(w.metadata.namespace, w.spec.template.metadata.labels);
  };
  return { router: labelsOf('Deployment'), node: labelsOf('StatefulSet') };
}

const policies = () => k8sDocs().filter((d): d is NetworkPolicy & typeof d => d.kind === 'NetworkPolicy');

const others = {
  internet: { kind: 'external' } as Endpoint,
  ingressController: pod('ingress-nginx', { 'app.kubernetes.io/name': 'ingress-nginx' }),
  prometheus: pod('monitoring', { 'app.kubernetes.io/name': 'prometheus' }),
  grafana: pod('monitoring', { 'app.kubernetes.io/name': 'grafana' }),
  kafka: pod('kafka', { app: 'kafka' }),
  dns: pod('kube-system', { 'k8s-app': 'kube-dns' }),
  intruder: pod('chat', { app: 'debug-shell' }),
  elsewhere: pod('default', { app: 'web' }),
};

const tcp = (port: number): Connection => ({ port });
const dns: Connection = { port: 53, protocol: 'UDP' };

test('deploy NetworkPolicies: who reaches whom', () => {
  const p = policies();
  assert.equal(p.length, 3);
  const { router, node } = manifestPods();
  const { internet, ingressController, prometheus, grafana, kafka, intruder, elsewhere } = others;
  const cases: [string, Endpoint, Endpoint, Connection, boolean][] = [
    // What must work.
    ['ingress controller -> router public port', ingressController, router, tcp(8080), true],
    ['router -> node', router, node, tcp(8081), true],
    ['router -> Kafka', router, kafka, tcp(9092), true],
    ['node -> Kafka', node, kafka, tcp(9092), true],
    ['router -> DNS', router, others.dns, dns, true],
    ['node -> DNS', node, others.dns, dns, true],
    ['Prometheus -> node metrics', prometheus, node, tcp(8081), true],
    ['Prometheus -> router admin (metrics)', prometheus, router, tcp(8090), true],
    // The admin port is not exposed.
    ['ingress controller -> router admin', ingressController, router, tcp(8090), false],
    ['internet -> router admin', internet, router, tcp(8090), false],
    ['Grafana -> router admin', grafana, router, tcp(8090), false],
    ['node -> router admin', node, router, tcp(8090), false],
    ['intruder -> router admin', intruder, router, tcp(8090), false],
    // Only through the ingress controller from outside.
    ['internet -> router public port', internet, router, tcp(8080), false],
    ['internet -> node', internet, node, tcp(8081), false],
    ['ingress controller -> node', ingressController, node, tcp(8081), false],
    ['another namespace -> node', elsewhere, node, tcp(8081), false],
    ['another namespace -> router public port', elsewhere, router, tcp(8080), false],
    // A pod started in the namespace can do nothing (issue 15, item 3: a fake member's heartbeat).
    ['intruder -> Kafka', intruder, kafka, tcp(9092), false],
    ['intruder -> node', intruder, node, tcp(8081), false],
    ['intruder -> router public port', intruder, router, tcp(8080), false],
    // Nodes talk to nobody but Kafka and DNS; nothing leaves for the internet.
    ['node -> node', node, node, tcp(8081), false],
    ['router -> Kafka on another port', router, kafka, tcp(9093), false],
    ['router -> internet', router, internet, tcp(443), false],
    ['node -> internet', node, internet, tcp(443), false],
  ];
  const wrong = cases.filter(([, from, to, c, expected]) => allowed(p, from, to, c) !== expected);
  assert.deepEqual(
    wrong.map(([what, , , , expected]) => `${what}: expected ${expected ? 'allowed' : 'denied'}`),
    [],
  );
});

describe('the NetworkPolicy evaluator', () => {
  const ns = 'chat';
  const a = pod(ns, { app: 'a' });
  const b = pod(ns, { app: 'b' });
  const policy = (spec: NetworkPolicy['spec']): NetworkPolicy => ({
    kind: 'NetworkPolicy',
    metadata: { name: 'p', namespace: ns },
    spec,
  });

  test('no policy allows everything; a selecting policy without rules denies its direction only', () => {
    assert.ok(allowed([], a, b, tcp(1)));
    const denyIngress = policy({ podSelector: { matchLabels: { app: 'b' } }, policyTypes: ['Ingress'] });
    assert.ok(!allowed([denyIngress], a, b, tcp(1)));
    assert.ok(allowed([denyIngress], b, a, tcp(1)), 'b may still send');
  });

  test('a peer with pod and namespace selectors needs both; a pod selector alone means the same namespace', () => {
    const sameNs = policy({
      podSelector: {},
      policyTypes: ['Ingress'],
      ingress: [{ from: [{ podSelector: { matchLabels: { app: 'a' } } }] }],
    });
    assert.ok(allowed([sameNs], a, b, tcp(1)));
    assert.ok(!allowed([sameNs], pod('other', { app: 'a' }), b, tcp(1)));
    const both = policy({
      podSelector: {},
      policyTypes: ['Ingress'],
      ingress: [
        {
          from: [
            {
              namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'other' } },
              podSelector: { matchLabels: { app: 'a' } },
            },
          ],
        },
      ],
    });
    assert.ok(allowed([both], pod('other', { app: 'a' }), b, tcp(1)));
    assert.ok(!allowed([both], pod('other', { app: 'x' }), b, tcp(1)));
    assert.ok(!allowed([both], a, b, tcp(1)));
  });

  test('ports match number and protocol (TCP by default); unsupported fields throw', () => {
    const onlyTcp53 = policy({
      podSelector: {},
      policyTypes: ['Ingress'],
      ingress: [{ ports: [{ port: 53 }] }],
    });
    assert.ok(allowed([onlyTcp53], a, b, tcp(53)));
    assert.ok(!allowed([onlyTcp53], a, b, dns));
    assert.ok(!allowed([onlyTcp53], a, b, tcp(54)));
    const named = policy({ podSelector: {}, ingress: [{ ports: [{ port: 'http' }] }] });
    assert.throws(() => allowed([named], a, b, tcp(1)), /named ports/);
    const expr = policy({ podSelector: { matchExpressions: [] } });
    assert.throws(() => allowed([expr], a, b, tcp(1)), /matchExpressions/);
  });
});
