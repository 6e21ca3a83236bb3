/**
 * Who may publish and subscribe to what on the embedded broker (`MQTT_ACL_FILE`, issue 8): each
 * device user writes only under its own location, the pipeline writes commands and errors.
 * Pure: parsing, topic matching and the decisions; app/broker.ts plugs them into aedes.
 *
 * The file (JSON):
 * ```json
 * {"users": {
 *   "pi-living_room": {"password_hash": "$2b$10$...",
 *                      "publish": ["HyperVolt/sensors/living_room/#"],
 *                      "subscribe": ["HyperVolt/errors/living_room/#", "HyperVolt/commands/#"]}}}
 * ```
 * `password_hash` is a bcrypt hash (`npm run -s hash-password`). The pipeline's own user
 * (MQTT_USERNAME, password MQTT_PASSWORD) needs no entry: it may subscribe to everything under
 * the topic prefix and publish `{prefix}/commands/#` and `{prefix}/errors/#`; an entry for it
 * replaces those rules. Anything not allowed is refused; anonymous clients are refused.
 */

export interface AclUser {
  passwordHash?: string;
  publish: string[];
  subscribe: string[];
}

export interface Acl {
  users: Map<string, AclUser>;
}

const BCRYPT_RE = /^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$/;

/** A topic filter as MQTT allows it: `#` only last and alone in its level, `+` alone in its level. */
export function validFilter(filter: string): boolean {
  if (filter === '' || filter.length > 65535 || filter.includes('\u0000')) return false;
  const levels = filter.split('/');
  return levels.every((l, i) => (l.includes('#') ? l === '#' && i === levels.length - 1 : !l.includes('+') || l === '+'));
}

/** Parses and checks the ACL file's text; throws with a message that names the problem. */
export function parseAcl(text: string): Acl {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new Error(`not valid JSON (${(err as Error).message})`);
  }
  const usersRaw = (raw as { users?: unknown })?.users;
  if (!usersRaw || typeof usersRaw !== 'object' || Array.isArray(usersRaw)) throw new Error('expected {"users": {"<name>": {...}}}');
  const users = new Map<string, AclUser>();
  for (const [name, entry] of Object.entries(usersRaw as Record<string, unknown>)) {
    if (!entry || typeof entry !== 'object' || Array.isArray(entry)) throw new Error(`user "${name}": expected an object`);
    const e = entry as Record<string, unknown>;
    const list = (key: 'publish' | 'subscribe'): string[] => {
      const v = e[key] ?? [];
      if (!Array.isArray(v) || !v.every((t) => typeof t === 'string')) throw new Error(`user "${name}": "${key}" must be a list of topics`);
      for (const t of v) if (!validFilter(t)) throw new Error(`user "${name}": "${t}" is not a valid topic filter`);
      return v;
    };
    const hash = e.password_hash;
    if (hash !== undefined && (typeof hash !== 'string' || !BCRYPT_RE.test(hash))) {
      throw new Error(`user "${name}": password_hash must be a bcrypt hash (npm run -s hash-password)`);
    }
    users.set(name, { passwordHash: hash as string | undefined, publish: list('publish'), subscribe: list('subscribe') });
  }
  return { users };
}

/** Whether the concrete `topic` matches the filter `pattern` (MQTT rules: `$` topics only match literally). */
export function topicMatches(pattern: string, topic: string): boolean {
  const p = pattern.split('/');
  const t = topic.split('/');
  if (topic.startsWith('$') && (p[0] === '#' || p[0] === '+')) return false;
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '#') return true;
    if (i >= t.length) return false;
    if (p[i] !== '+' && p[i] !== t[i]) return false;
  }
  return p.length === t.length;
}

/**
 * Whether every topic the subscription `filter` can match is also matched by `pattern`, i.e. the
 * subscription asks for nothing more than the pattern allows.
 */
export function filterWithin(filter: string, pattern: string): boolean {
  const f = filter.split('/');
  const p = pattern.split('/');
  // Wildcards never match `$` topics, so a `$` filter is only within a pattern that names it.
  if (f[0].startsWith('$') && (p[0] === '+' || p[0] === '#')) return false;
  for (let i = 0; i < f.length; i++) {
    if (p[i] === '#') return true;
    if (i >= p.length) return false;
    if (f[i] === '#') return false; // the filter reaches deeper than a pattern level allows
    if (p[i] === '+') continue; // `+` or any literal is within `+`
    if (f[i] === '+' || f[i] !== p[i]) return false;
  }
  return f.length === p.length || (p.length === f.length + 1 && p[f.length] === '#');
}

/** `$share/{group}/{filter}` → the filter. */
export function stripShare(filter: string): string {
  const m = /^\$share\/[^/]+\/(.+)$/.exec(filter);
  return m ? m[1] : filter;
}

/** The rules of the pipeline's own user when the file does not list it. */
export function pipelineRules(prefix: string): AclUser {
  return { publish: [`${prefix}/commands/#`, `${prefix}/errors/#`], subscribe: [`${prefix}/#`] };
}

export class AclPolicy {
  constructor(
    private readonly acl: Acl,
    /** MQTT_USERNAME: the pipeline's user, with `pipelineRules` unless the file lists it. */
    private readonly pipelineUser: string | undefined,
    private readonly prefix: string,
  ) {}

  rules(user: string | undefined): AclUser | undefined {
    if (user === undefined) return undefined;
    const listed = this.acl.users.get(user);
    if (listed) return listed;
    return user === this.pipelineUser ? pipelineRules(this.prefix) : undefined;
  }

  /** The bcrypt hash of a listed user, if any. */
  passwordHash(user: string): string | undefined {
    return this.acl.users.get(user)?.passwordHash;
  }

  canPublish(user: string | undefined, topic: string): boolean {
    return this.rules(user)?.publish.some((p) => topicMatches(p, topic)) ?? false;
  }

  canSubscribe(user: string | undefined, filter: string): boolean {
    const f = stripShare(filter);
    return this.rules(user)?.subscribe.some((p) => filterWithin(f, p)) ?? false;
  }
}
