export {
  createRouter,
  membershipFromConfig,
  type Router,
  type RouterConfig,
  type RouterDeps,
} from './router.js';
export { RouterMetrics } from './metrics.js';
export { StaticMembership, parseStaticMembers } from './membership/static-membership.js';
export { KafkaMembership } from './membership/kafka-membership.js';
export type { MemberInfo, MembershipSource } from './membership/types.js';
