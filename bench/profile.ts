/**
 * Reads a V8 `.cpuprofile` (node --cpu-prof) and says where the time went: self time grouped by
 * module (mqtt parsing, sensor-validate, Node-RED routing and cloning, hot window + Redis, cold
 * store + pg, WebSocket, JSON, GC, ...), the top self-time functions, and the inclusive time of a
 * few functions that matter for the pipeline (cloneMessage, validatePayload, ...).
 */
import fs from 'fs';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
export interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** The module group of a frame (self time is summed per group). */
export function groupOf(f: CallFrame): string {
  const u = f.url;
  const fn = f.functionName;
  if (fn === '(idle)') return 'idle';
  if (fn === '(garbage collector)') return 'GC';
  if (fn === '(program)') return 'V8/native (unattributed)';
  if (/\/(mqtt|mqtt-packet|bl|readable-stream|duplexify|number-allocator|help-me|rfdc|worker-timers)\//.test(u)) return 'mqtt.js (packet parsing, PUBACK)';
  if (/10-mqtt\.js/.test(u)) return 'Node-RED mqtt in node';
  if (/\/dist\/nodes\/sensor-validate\//.test(u)) return 'sensor-validate';
  if (/\/dist\/nodes\/(hot-window|hypervolt-hot-store)\/|\/(ioredis|redis-parser|denque|cluster-key-slot|standard-as-callback|redis-errors)\//.test(u)) {
    return 'hot-window + ioredis';
  }
  if (/\/dist\/nodes\/(cold-store|hypervolt-database)\/|\/dist\/nodes\/shared\/db\/|\/(pg|pg-protocol|pg-types|pg-pool|pg-connection-string|postgres-array|postgres-date|postgres-interval|postgres-bytea|pgpass|split2)\//.test(u)) {
    return 'cold-store + pg';
  }
  if (/22-websocket\.js|\/ws\/lib\/|\/(bufferutil|utf-8-validate)\//.test(u)) return 'WebSocket (ws + websocket out)';
  if (/^Function node/.test(u)) {
    const name = /\[(.*)\]/.exec(u)?.[1] ?? /^Function node[^:]*:([^ ]+)/.exec(u)?.[1] ?? '?';
    return `function node "${name}"`;
  }
  if (/10-function\.js/.test(u)) return 'function node runtime (10-function.js)';
  if (/lodash\.clonedeep/.test(u) || (/@node-red\/util\/lib\/util\.js/.test(u) && fn === 'cloneMessage')) return 'Node-RED message cloning';
  if (/@node-red\/(runtime|util|registry)\//.test(u)) return 'Node-RED routing/runtime';
  if (/\/(express|body-parser|router|finalhandler|send|raw-body|cors|on-finished|cookie|mime|qs|iconv-lite)\//.test(u)) return 'HTTP (express)';
  if (/\/dist\/(nodes|app)\//.test(u)) return 'other HyperVolt code';
  if (u === '' && /^(parse|stringify|JSONParse|JSONStringify)$/.test(fn)) return 'JSON (native parse/stringify)';
  if (u === '' && /^(writev|writeUtf8String|writeBuffer|writeLatin1String|writeAsciiString|readStart|readStop)$/.test(fn)) {
    return 'Node.js sockets/streams';
  }
  if (u.startsWith('node:')) {
    if (/^node:(net|internal\/stream_base_commons|internal\/streams|stream|internal\/net)/.test(u)) return 'Node.js sockets/streams';
    if (/^node:(internal\/timers|timers)/.test(u)) return 'Node.js timers';
    if (/^node:(events|internal\/process\/task_queues|internal\/async_hooks)/.test(u)) return 'Node.js events/task queues';
    if (/^node:buffer|^node:internal\/buffer/.test(u)) return 'Node.js buffers';
    return 'Node.js other core';
  }
  if (u === '') return 'other native builtins';
  return 'other';
}

export interface ProfileSummary {
  file: string;
  /** Milliseconds of samples inside the window (or the whole profile). */
  totalMs: number;
  busyMs: number;
  windowed: boolean;
  groups: { group: string; ms: number; pctBusy: number }[];
  top: { fn: string; where: string; group: string; ms: number; pctBusy: number }[];
  inclusive: { fn: string; ms: number; pctBusy: number }[];
  /** Time in socket writes (mostly the write syscalls), by the module that asked for them. */
  socketWrites: { group: string; ms: number; pctBusy: number }[];
}

/** Frames whose inclusive time (the frame and all its callees) is reported. */
const INCLUSIVE: { label: string; match: (f: CallFrame) => boolean }[] = [
  { label: 'Node-RED Node.send (routing, hooks, cloning, downstream sync work)', match: (f) => /^(Node\.)?send$/.test(f.functionName) && /@node-red\/runtime\/lib\/nodes\/Node\.js/.test(f.url) },
  { label: 'Node-RED cloneMessage (lodash.clonedeep per extra wire)', match: (f) => f.functionName === 'cloneMessage' },
  { label: 'mqtt.js handlePublish (incl. mqtt in node and the flow it triggers)', match: (f) => f.functionName === 'handlePublish' && /\/mqtt\//.test(f.url) },
  { label: 'mqtt-packet parser', match: (f) => /\/mqtt-packet\//.test(f.url) && /parse/i.test(f.functionName) },
  { label: 'sensor-validate validatePayload', match: (f) => f.functionName === 'validatePayload' },
  { label: 'ReadingBatcher.takeBatch', match: (f) => f.functionName === 'takeBatch' },
  { label: 'pg Client.query + protocol', match: (f) => /\/(pg|pg-protocol)\//.test(f.url) },
  { label: 'ioredis (commands, pipeline, parser)', match: (f) => /\/(ioredis|redis-parser)\//.test(f.url) },
  { label: 'WebSocket (ws send / websocket out)', match: (f) => /22-websocket\.js|\/ws\/lib\//.test(f.url) },
  { label: 'function nodes (all)', match: (f) => /^Function node/.test(f.url) },
  { label: 'JSON.parse', match: (f) => f.url === '' && f.functionName === 'parse' },
  { label: 'JSON.stringify', match: (f) => f.url === '' && f.functionName === 'stringify' },
];

/**
 * Summarises a profile. `window` (monotonic µs, same clock as process.hrtime) keeps only the
 * samples taken under load; when no sample falls in it the whole profile is used.
 */
export function summarizeProfile(file: string, window?: { fromUs: number; toUs: number }, topN = 25): ProfileSummary {
  const p = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  for (const n of p.nodes) byId.set(n.id, n);
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

  // Self time per node id: each sample gets the delta to the next sample.
  const selfUs = new Map<number, number>();
  let t = p.startTime;
  const inWindow: boolean[] = [];
  let kept = 0;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i] ?? 0;
    const ok = !window || (t >= window.fromUs && t <= window.toUs);
    inWindow.push(ok);
    if (ok) kept++;
  }
  const windowed = !!window && kept > 0;
  for (let i = 0; i < p.samples.length; i++) {
    if (windowed && !inWindow[i]) continue;
    const dt = Math.max(0, Math.min(p.timeDeltas[i + 1] ?? p.timeDeltas[i] ?? 0, 100_000));
    selfUs.set(p.samples[i], (selfUs.get(p.samples[i]) ?? 0) + dt);
  }

  let total = 0;
  let idle = 0;
  const groups = new Map<string, number>();
  const fns = new Map<string, { fn: string; where: string; group: string; us: number }>();
  for (const [id, us] of selfUs) {
    const f = byId.get(id)!.callFrame;
    total += us;
    const g = groupOf(f);
    if (g === 'idle') {
      idle += us;
      continue;
    }
    groups.set(g, (groups.get(g) ?? 0) + us);
    const where = f.url ? `${f.url.replace(/^.*\/node_modules\//, '').replace(/^.*\/dist\//, 'dist/').replace(/^file:\/\//, '')}:${f.lineNumber + 1}` : '(native)';
    const key = `${f.functionName || '(anonymous)'} ${where}`;
    const e = fns.get(key) ?? { fn: f.functionName || '(anonymous)', where, group: g, us: 0 };
    e.us += us;
    fns.set(key, e);
  }
  const busy = total - idle;
  const pct = (us: number) => (busy > 0 ? (100 * us) / busy : 0);

  // Inclusive time: a node's self time counts for every distinct listed name on its stack.
  const inclusive = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const names = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const f = byId.get(cur)!.callFrame;
      for (const inc of INCLUSIVE) if (inc.match(f)) names.add(inc.label);
    }
    for (const n of names) inclusive.set(n, (inclusive.get(n) ?? 0) + us);
  }

  // Socket writes: a leaf in Node's socket/stream code, charged to the nearest caller outside it.
  const writes = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const leaf = byId.get(id)!.callFrame;
    if (groupOf(leaf) !== 'Node.js sockets/streams') continue;
    let who = 'Node.js internals';
    for (let cur = parent.get(id); cur !== undefined; cur = parent.get(cur)) {
      const f = byId.get(cur)!.callFrame;
      if (f.url === '' || f.url.startsWith('node:')) continue;
      who = groupOf(f);
      break;
    }
    writes.set(who, (writes.get(who) ?? 0) + us);
  }

  return {
    file,
    socketWrites: [...writes.entries()].sort((a, b) => b[1] - a[1]).map(([group, us]) => ({ group, ms: us / 1000, pctBusy: pct(us) })),
    totalMs: total / 1000,
    busyMs: busy / 1000,
    windowed,
    groups: [...groups.entries()].sort((a, b) => b[1] - a[1]).map(([group, us]) => ({ group, ms: us / 1000, pctBusy: pct(us) })),
    top: [...fns.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, topN)
      .map((e) => ({ fn: e.fn, where: e.where, group: e.group, ms: e.us / 1000, pctBusy: pct(e.us) })),
    inclusive: [...inclusive.entries()].sort((a, b) => b[1] - a[1]).map(([fn, us]) => ({ fn, ms: us / 1000, pctBusy: pct(us) })),
  };
}
