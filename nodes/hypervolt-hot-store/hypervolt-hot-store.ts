/**
 * Config node `hypervolt-hot-store`: owns one hot store (Redis or in-process) for every
 * hot-window node that points at it; connects on creation, closes on close.
 */
import type { NodeAPI, NodeDef } from 'node-red';
import type { StoreStateListener } from '../hot-window/window-store';
import { createWindowStore, parseHotStoreConfig, type HotStoreConfigNode, type HotStoreNodeDef } from './hot-store-config';

export = function (RED: NodeAPI) {
  function HypervoltHotStoreNode(this: HotStoreConfigNode, def: NodeDef & HotStoreNodeDef) {
    RED.nodes.createNode(this, def);
    const node = this;
    const config = parseHotStoreConfig(def);
    for (const w of config.warnings) node.warn(w);
    const store = createWindowStore(config, { log: (m) => node.log(m), warn: (m) => node.warn(m) });

    Object.defineProperties(node, {
      kind: { get: () => store.kind },
      state: { get: () => store.state },
      // For nodes that need Redis itself (sensor-in's group membership), on a connection of their own.
      redis: { get: () => (config.url ? { url: config.url, prefix: config.prefix } : null) },
    });
    node.getStore = () => store;
    node.onState = (listener: StoreStateListener) => store.onStateChange(listener);

    // A failed first attempt is already logged by the store's error listener; it keeps retrying.
    store.connect().catch(() => undefined);

    node.on('close', (_removed: boolean, done: () => void) => {
      store.close().then(
        () => done(),
        (err: Error) => {
          node.warn(`closing the hot store: ${err.message}`);
          done();
        },
      );
    });
  }
  RED.nodes.registerType('hypervolt-hot-store', HypervoltHotStoreNode);
};
