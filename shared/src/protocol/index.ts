export * from './schemas.js';
export * from './codec.js';
export * from './close-codes.js';
