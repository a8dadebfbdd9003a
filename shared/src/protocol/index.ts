export * from './schemas.js';
export * from './codec.js';
export * from './frame-shape.js';
export * from './close-codes.js';
export { renderProtocolDocs } from './docs.js';
