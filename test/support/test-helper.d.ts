// Minimal typing of node-red-node-test-helper (it ships none).
declare module 'node-red-node-test-helper' {
  import type { Node } from 'node-red';
  type NodeModule = (RED: any) => void;
  interface TestNode extends Node {
    [key: string]: any;
  }
  const helper: {
    init(runtimePath: string, userSettings?: Record<string, unknown>): void;
    settings(userSettings: Record<string, unknown>): void;
    startServer(done?: (err?: unknown) => void): Promise<void>;
    stopServer(done?: (err?: unknown) => void): Promise<void>;
    load(
      nodes: NodeModule | NodeModule[],
      flow: Record<string, unknown>[],
      credentials?: Record<string, unknown> | (() => void),
      cb?: () => void,
    ): Promise<void>;
    unload(): Promise<void>;
    getNode(id: string): TestNode;
    clearFlows(): Promise<void>;
    request(): any;
    url(): string;
    log(): any;
  };
  export = helper;
}
