/**
 * Config node `hypervolt-database`: owns one database (PostgreSQL pool or SQLite file) for the
 * nodes that use it. The logic is in database-connection.ts; this file is the Node-RED glue.
 */
import type { Node, NodeAPI, NodeDef } from 'node-red';
import { openDatabase, resolveDatabaseTarget } from '../shared/db';
import { DatabaseConnection, DatabaseProvider, withPassword } from './database-connection';
import { maskUrlsIn } from '../shared/redact';

interface DatabaseNodeDef extends NodeDef {
  url?: string;
}

interface DatabaseCredentials {
  password?: string;
}

type DatabaseConfigNode = Node<DatabaseCredentials> & DatabaseProvider;

export = function (RED: NodeAPI) {
  function HypervoltDatabaseNode(this: DatabaseConfigNode, config: DatabaseNodeDef) {
    RED.nodes.createNode(this, config);
    const url = withPassword((config.url ?? '').trim(), this.credentials?.password);
    const logger = { log: (m: string) => this.log(m), warn: (m: string) => this.warn(m) };
    let description = maskUrlsIn(url);
    let invalid: string | undefined;
    try {
      description = resolveDatabaseTarget(url).description;
    } catch (err) {
      invalid = err instanceof Error ? err.message : String(err);
    }
    this.connection = new DatabaseConnection({
      url,
      description,
      logger,
      open: (u) => openDatabase(u, { logger }),
    });
    this.getDatabase = (waitMs?: number) => this.connection.getDatabase(waitMs);
    Object.defineProperty(this, 'state', { get: () => this.connection.state });
    if (invalid) this.connection.fail(invalid);
    else this.connection.start();

    this.on('close', (_removed: boolean, done: () => void) => {
      this.connection.close().then(done, done);
    });
  }

  RED.nodes.registerType<DatabaseConfigNode, DatabaseNodeDef, unknown, DatabaseCredentials>('hypervolt-database', HypervoltDatabaseNode, {
    credentials: { password: { type: 'password' } },
  });
};
