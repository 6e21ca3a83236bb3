/**
 * Node-RED credentials for the shipped flow.
 *
 * - The key that encrypts the credentials file: `NODE_RED_CREDENTIAL_SECRET`, else a random one
 *   generated once and kept in the data directory (mode 0600). Never a constant in the code.
 * - Secrets from the environment: Node-RED substitutes `${VAR}` in a node's credentials, but a
 *   flow file cannot carry credentials, so the app writes those `${VAR}` placeholders into the
 *   credentials file for the nodes that need them (MQTT user and password, API keys). Only the
 *   placeholders are stored, never the secrets; entries a user typed in the editor are kept.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'crypto';
import fs from 'fs';
import path from 'path';

export const SECRET_FILE = 'credential-secret';

/** The credential secret: from the environment, else read from (or created in) `dataDir`. */
export function credentialSecret(env: Record<string, string | undefined>, dataDir: string): string {
  if (env.NODE_RED_CREDENTIAL_SECRET) return env.NODE_RED_CREDENTIAL_SECRET;
  const file = path.join(dataDir, SECRET_FILE);
  try {
    const existing = fs.readFileSync(file, 'utf8').trim();
    if (existing) return existing;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  fs.mkdirSync(dataDir, { recursive: true });
  const secret = randomBytes(32).toString('hex');
  try {
    fs.writeFileSync(file, `${secret}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    // Another process created it first: use theirs.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return fs.readFileSync(file, 'utf8').trim();
    throw err;
  }
  return secret;
}

export type CredentialMap = Record<string, Record<string, string>>;

/** Node-RED's format (runtime/lib/nodes/credentials.js): aes-256-ctr, key sha256(secret), `{"$": ivHex + base64}`. */
export function encryptCredentials(secret: string, creds: CredentialMap): { $: string } {
  const key = createHash('sha256').update(secret).digest();
  const iv = randomBytes(16);
  const cipher = createCipheriv('aes-256-ctr', key, iv);
  return { $: iv.toString('hex') + cipher.update(JSON.stringify(creds), 'utf8', 'base64') + cipher.final('base64') };
}

export function decryptCredentials(secret: string, stored: { $: string }): CredentialMap {
  const key = createHash('sha256').update(secret).digest();
  const iv = Buffer.from(stored.$.substring(0, 32), 'hex');
  const decipher = createDecipheriv('aes-256-ctr', key, iv);
  const text = decipher.update(stored.$.substring(32), 'base64', 'utf8') + decipher.final('utf8');
  return JSON.parse(text) as CredentialMap;
}

/** Node type → credential property → the environment variable it comes from. */
export const ENV_CREDENTIALS: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  'mqtt-broker': { user: 'MQTT_USERNAME', password: 'MQTT_PASSWORD' },
  'electricitymaps-account': { apiKey: 'ELECTRICITY_MAPS_API_KEY' },
  'openweather-account': { apiKey: 'OPENWEATHER_API_KEY' },
};

/**
 * The credentials the app wants for `flow`, given what the file holds now. For each node of a
 * type above: when some of its variables are set, its entry becomes the placeholders of those;
 * when none is set, a placeholder entry is removed (an empty user name is not "no user name");
 * an entry holding anything but our placeholders was typed by a user and is left alone.
 */
export function planCredentials(
  flow: ReadonlyArray<{ id?: unknown; type?: unknown }>,
  current: CredentialMap,
  env: Record<string, string | undefined>,
  table: typeof ENV_CREDENTIALS = ENV_CREDENTIALS,
): { creds: CredentialMap; changed: boolean } {
  const creds: CredentialMap = { ...current };
  let changed = false;
  for (const node of flow) {
    if (typeof node.id !== 'string' || typeof node.type !== 'string') continue;
    const fields = table[node.type];
    if (!fields) continue;
    const entry = creds[node.id];
    const isOurs =
      entry === undefined ||
      Object.entries(entry).every(([k, v]) => v === '' || (fields[k] !== undefined && v === `\${${fields[k]}}`));
    if (!isOurs) continue;
    const wanted: Record<string, string> = {};
    for (const [prop, variable] of Object.entries(fields)) {
      if (env[variable]) wanted[prop] = `\${${variable}}`;
    }
    if (Object.keys(wanted).length === 0) {
      if (entry !== undefined) {
        delete creds[node.id];
        changed = true;
      }
    } else if (JSON.stringify(entry) !== JSON.stringify(wanted)) {
      creds[node.id] = wanted;
      changed = true;
    }
  }
  return { creds, changed };
}

/** Where Node-RED keeps the credentials of `flowFile`: `<userDir>/<name>_cred.json`. */
export function credentialsFile(userDir: string, flowFile: string): string {
  const ext = path.extname(flowFile);
  return path.join(userDir, `${path.basename(flowFile, ext)}_cred${ext}`);
}

/**
 * Brings the credentials file in line with `planCredentials`. Returns a note for the log, or null
 * when nothing changed. A file this secret cannot decrypt is left untouched (Node-RED reports it).
 */
export function seedCredentials(opts: {
  flowFile: string;
  userDir: string;
  secret: string;
  env: Record<string, string | undefined>;
}): string | null {
  const flow = JSON.parse(fs.readFileSync(opts.flowFile, 'utf8')) as Array<{ id?: unknown; type?: unknown }>;
  const file = credentialsFile(opts.userDir, opts.flowFile);
  let current: CredentialMap = {};
  let exists = true;
  try {
    const stored = JSON.parse(fs.readFileSync(file, 'utf8'));
    current = stored && typeof stored.$ === 'string' ? decryptCredentials(opts.secret, stored) : stored ?? {};
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      return `credentials file ${file} could not be read with this credential secret: left as it is (${(err as Error).message})`;
    }
    exists = false;
  }
  const { creds, changed } = planCredentials(Array.isArray(flow) ? flow : [], current, opts.env);
  // No file at all: write one, even empty, or Node-RED warns "Encrypted credentials not found".
  if (!changed && exists) return null;
  fs.mkdirSync(opts.userDir, { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(encryptCredentials(opts.secret, creds), null, 4), { mode: 0o600 });
  fs.renameSync(tmp, file);
  const n = Object.keys(creds).length;
  return n === 0
    ? `created the (empty) credentials file ${file}`
    : `credentials of ${n} node(s) taken from the environment (${file})`;
}
