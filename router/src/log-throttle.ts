// Moved to shared (the token verifier logs refusals with it too); kept here so router imports stay short.
export { LogThrottle } from '@chat/shared';
export type { LogThrottleOptions, ThrottleDecision } from '@chat/shared';
