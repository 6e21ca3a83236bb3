/**
 * The database layer: `openDatabase(url)` picks PostgreSQL or SQLite from the URL, runs the
 * migrations and returns the repositories. Node-RED-free; the `hypervolt-database` config node
 * owns one `Database` and closes it on close.
 */
export * from './types';
export { openDatabase, resolveDatabaseTarget, DEFAULT_SQLITE_PATH } from './open';
export type { DatabaseTarget } from './open';
export { readingKey } from './readings';
