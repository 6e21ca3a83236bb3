export * from './spool';
export * from './tracker';
