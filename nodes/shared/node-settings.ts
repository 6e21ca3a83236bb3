/**
 * Settings a node reads from its config and the runtime, the same way in every node that has them.
 */
import type { Node, NodeAPI } from 'node-red';

/**
 * A text setting, trimmed, with `${VAR}` anywhere in it resolved from the environment (Node-RED
 * itself only substitutes a value that is one whole `${VAR}`).
 */
export function envText(RED: NodeAPI, node: Node, value: unknown): string {
  const s = String(value ?? '').trim();
  return s.includes('${') ? String(RED.util.evaluateNodeProperty(s, 'env', node, {} as never) ?? '').trim() : s;
}

/** Where a node keeps its files: `DATA_DIR` (the app sets it), else Node-RED's user directory, else ''. */
export function dataDir(RED: NodeAPI, node: Node): string {
  return String(RED.util.getSetting(node, 'DATA_DIR') ?? '') || String(RED.settings.userDir ?? '');
}
