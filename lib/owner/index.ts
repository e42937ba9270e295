export * from './client.js';
export * from './launch.js';
