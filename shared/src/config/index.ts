export * from './fields.js';
export * from './load.js';
export * from './schemas.js';
export { renderConfigDocs } from './docs.js';
export * from './entry.js';
