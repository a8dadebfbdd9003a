export * from './kafka/broker.js';
export * from './kafka/harness.js';
export * from './kafka/maven.js';
export * from './net.js';
export * from './poll.js';
export * from './paths.js';
export * from './harness/node-process.js';
export * from './harness/ws-client.js';
