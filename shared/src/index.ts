export * from './errors.js';
export * from './logger.js';
export * from './hash-ring.js';
export * from './config/index.js';
export * from './protocol/index.js';
export { renderErrorDocs } from './error-docs.js';
export * from './cluster/records.js';
export * from './auth/index.js';
export * from './token-bucket.js';
