export * from './schemas.js';
export * from './codec.js';
