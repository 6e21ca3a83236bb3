/**
 * The hot-store config node's logic, free of Node-RED: reads its properties (which may arrive as
 * `${ENV_VAR}` text) and creates the store they describe.
 */
import type { Node } from 'node-red';
import { MemoryWindowStore } from '../hot-window/memory-window-store';
import { RedisWindowStore } from '../hot-window/redis-window-store';
import {
  DEFAULT_PREFIX,
  DEFAULT_TTL_SECONDS,
  DEFAULT_WINDOW_SIZE,
  type StoreLogger,
  type StoreState,
  type StoreStateListener,
  type WindowStore,
} from '../hot-window/window-store';
import { redactUrl } from '../shared/redact';

/** The properties as the editor saves them (strings, possibly `${VAR}`). */
export interface HotStoreNodeDef {
  url?: unknown;
  prefix?: unknown;
  size?: unknown;
  ttl?: unknown;
}

export interface HotStoreConfig {
  /** Empty: the in-process store. */
  url: string;
  prefix: string;
  size: number;
  ttlSeconds: number;
  /** What was ignored and why (an invalid number, an unknown URL scheme), for the log. */
  warnings: string[];
}

/** Upper bounds that keep a typo from allocating a huge window or an effectively eternal one. */
const MAX_SIZE = 100_000;
const MAX_TTL_SECONDS = 365 * 24 * 3600;

/** Node-RED replaces a property whose whole value is `${VAR}`; an unset VAR is left as is. */
function text(v: unknown): string {
  if (typeof v === 'number') return String(v);
  if (typeof v !== 'string') return '';
  const t = v.trim();
  return /^\$\{[^}]*\}$/.test(t) ? '' : t;
}

function positiveInt(v: unknown, fallback: number, max: number, name: string, warnings: string[]): number {
  const t = text(v);
  if (t === '') return fallback;
  const n = Number(t);
  if (!Number.isInteger(n) || n < 1 || n > max) {
    warnings.push(`${name} "${t}" is not a whole number from 1 to ${max}; using ${fallback}`);
    return fallback;
  }
  return n;
}

export function parseHotStoreConfig(def: HotStoreNodeDef): HotStoreConfig {
  const warnings: string[] = [];
  let url = text(def.url);
  if (url && !/^rediss?:\/\//i.test(url)) {
    warnings.push(`url "${redactUrl(url)}" is not redis:// or rediss://; using the in-process store`);
    url = '';
  }
  const prefix = text(def.prefix) || DEFAULT_PREFIX;
  return {
    url,
    prefix,
    size: positiveInt(def.size, DEFAULT_WINDOW_SIZE, MAX_SIZE, 'size', warnings),
    ttlSeconds: positiveInt(def.ttl, DEFAULT_TTL_SECONDS, MAX_TTL_SECONDS, 'ttl', warnings),
    warnings,
  };
}

export function createWindowStore(config: HotStoreConfig, logger: StoreLogger): WindowStore {
  const { url, prefix, size, ttlSeconds } = config;
  return url
    ? new RedisWindowStore({ url, prefix, size, ttlSeconds, logger })
    : new MemoryWindowStore({ size, ttlSeconds, logger });
}

/** What a hot-window node may use of its config node. */
export interface HotStoreConfigNode extends Node {
  getStore(): WindowStore;
  readonly kind: WindowStore['kind'];
  readonly state: StoreState;
  /** The Redis URL and key prefix (null for the in-process store), for a node's own connection. */
  readonly redis?: { url: string; prefix: string } | null;
  /** Calls `listener` on every connection state change; returns a function that removes it. */
  onState(listener: StoreStateListener): () => void;
}
