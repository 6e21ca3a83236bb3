/**
 * Small helpers for the fetch node specs: wait for a condition, read the statuses a node set
 * (node-red-node-test-helper turns Node.prototype.status into a sinon spy).
 */
import type { NodeStatus } from 'node-red';

/** Polls `cond` every 20 ms until it holds; rejects with `what` after `timeoutMs`. */
export async function waitFor(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

interface SpyCall {
  thisValue: unknown;
  args: unknown[];
}

/** Every status the node has set so far, oldest first. */
export function statusesOf(node: object): NodeStatus[] {
  const spy = (node as { status: { getCalls?: () => SpyCall[] } }).status;
  if (typeof spy.getCalls !== 'function') throw new Error('status is not spied on: load the flow with node-red-node-test-helper');
  return spy
    .getCalls()
    .filter((c) => c.thisValue === node)
    .map((c) => c.args[0] as NodeStatus);
}

export function lastStatus(node: object): NodeStatus | undefined {
  return statusesOf(node).at(-1);
}

/** Messages a helper node received, collected from the moment this is called. */
export function collect<T = Record<string, unknown>>(node: { on(event: 'input', fn: (msg: T) => void): unknown }): T[] {
  const got: T[] = [];
  node.on('input', (msg: T) => got.push(msg));
  return got;
}
