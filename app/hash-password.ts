/**
 * `npm run -s hash-password`: prints a bcrypt hash for ADMIN_PASSWORD_HASH (and for the
 * `password_hash` of MQTT_ACL_FILE users).
 *
 * The password comes from the terminal without echo (asked twice), or from a pipe
 * (`printf %s "$PW" | npm run -s hash-password`). It is accepted as an argument too
 * (`npm run -s hash-password -- PW`), with a warning: arguments stay in shell history and are
 * visible to other users in the process list. Only the hash goes to stdout; prompts and warnings
 * go to stderr, so `ADMIN_PASSWORD_HASH="$(npm run -s hash-password)"` works.
 *
 * bcrypt comes from Node-RED's own dependencies, the same implementation its login uses
 * (`@node-rs/bcrypt` when it is installed, else `bcryptjs`): nothing to add to ours.
 */
import path from 'path';

export const BCRYPT_COST = 10;
/** bcrypt ignores everything past 72 bytes: a longer password would be silently shortened. */
export const BCRYPT_MAX_BYTES = 72;

export interface Bcrypt {
  hash(password: string, cost: number): Promise<string>;
  compare(password: string, hash: string): Promise<boolean>;
}

/** Node-RED's bcrypt, resolved from its package as its admin login does. */
export function loadBcrypt(): Bcrypt {
  const nodeRedDir = path.dirname(require.resolve('node-red/package.json'));
  const editorApiDir = (() => {
    try {
      return path.dirname(require.resolve('@node-red/editor-api/package.json', { paths: [nodeRedDir] }));
    } catch {
      return nodeRedDir;
    }
  })();
  for (const name of ['@node-rs/bcrypt', 'bcryptjs']) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const lib = require(require.resolve(name, { paths: [editorApiDir, nodeRedDir] })) as Bcrypt;
      if (typeof lib.hash === 'function' && typeof lib.compare === 'function') return lib;
    } catch {
      // try the next one
    }
  }
  throw new Error('no bcrypt implementation found (Node-RED ships bcryptjs): run `npm install`');
}

/** Why a password cannot be used, or null. */
export function passwordProblem(password: string): string | null {
  if (password.length === 0) return 'the password is empty';
  if (Buffer.byteLength(password, 'utf8') > BCRYPT_MAX_BYTES) {
    return `the password is longer than ${BCRYPT_MAX_BYTES} bytes, which bcrypt would silently cut short`;
  }
  return null;
}

export interface ParsedArgs {
  help?: boolean;
  password?: string;
  error?: string;
}

/** `[--] [PASSWORD]`, `-h`/`--help`. */
export function parseArgs(argv: readonly string[]): ParsedArgs {
  const args = [...argv];
  if (args[0] === '-h' || args[0] === '--help') return { help: true };
  if (args[0] === '--') args.shift();
  if (args.length > 1) return { error: 'give at most one password argument (better: none, and type it or pipe it)' };
  return args.length === 1 ? { password: args[0] } : {};
}

export const ARGV_WARNING =
  'warning: a password given as an argument stays in your shell history and is visible in the process list; ' +
  'run without it to type it, or pipe it in';

/** The password in piped input: the text without its final line break; one line only. */
export function passwordFromPipe(text: string): { password?: string; error?: string } {
  const pw = text.replace(/\r?\n$/, '');
  if (/[\r\n]/.test(pw)) return { error: 'the input has more than one line: pipe just the password' };
  return { password: pw };
}

/**
 * A line typed on a raw-mode terminal, without echo: printable characters are kept, backspace
 * removes the last one, Enter ends the line, Ctrl-C (or Ctrl-D on an empty line) cancels.
 * `feed` returns the state after a chunk of keystrokes (a paste may arrive as one chunk).
 */
export class HiddenLine {
  private chars: string[] = [];
  /** Inside a terminal escape sequence (arrow keys...): after ESC, ESC [ or ESC O. */
  private escape: 'none' | 'esc' | 'csi' | 'ss3' = 'none';
  state: 'typing' | 'done' | 'cancelled' = 'typing';

  feed(chunk: string): 'typing' | 'done' | 'cancelled' {
    for (const ch of chunk) {
      if (this.state !== 'typing') break;
      if (this.escape === 'esc') {
        this.escape = ch === '[' ? 'csi' : ch === 'O' ? 'ss3' : 'none';
        continue;
      }
      if (this.escape === 'ss3') {
        this.escape = 'none';
        continue;
      }
      if (this.escape === 'csi') {
        if (ch >= '@' && ch <= '~') this.escape = 'none'; // the final byte ends the sequence
        continue;
      }
      if (ch === '\u001b') this.escape = 'esc';
      else if (ch === '\r' || ch === '\n') this.state = 'done';
      else if (ch === '\u0003') this.state = 'cancelled';
      else if (ch === '\u0004') {
        if (this.chars.length === 0) this.state = 'cancelled';
        else this.state = 'done';
      } else if (ch === '\u007f' || ch === '\b') this.chars.pop();
      else if (ch === '\u0015') this.chars = []; // Ctrl-U: clear the line
      else if (ch >= ' ') this.chars.push(ch);
      // other control characters are ignored
    }
    return this.state;
  }

  get value(): string {
    return this.chars.join('');
  }
}

/** Reads one line from a TTY without echo. Resolves null when cancelled. */
function readHidden(prompt: string, input: NodeJS.ReadStream, output: NodeJS.WritableStream): Promise<string | null> {
  return new Promise((resolve) => {
    const line = new HiddenLine();
    output.write(prompt);
    input.setRawMode(true);
    input.setEncoding('utf8');
    input.resume();
    const onData = (chunk: string) => {
      if (line.feed(chunk) === 'typing') return;
      input.removeListener('data', onData);
      input.setRawMode(false);
      input.pause();
      output.write('\n');
      resolve(line.state === 'done' ? line.value : null);
    };
    input.on('data', onData);
  });
}

function readAll(input: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    input.setEncoding('utf8');
    input.on('data', (c: string) => {
      text += c;
      if (text.length > 64 * 1024) reject(new Error('the input is too long'));
    });
    input.once('end', () => resolve(text));
    input.once('error', reject);
  });
}

export const USAGE = `Prints a bcrypt hash for ADMIN_PASSWORD_HASH (or an MQTT_ACL_FILE user's password_hash).

  npm run -s hash-password                     type the password (not echoed, asked twice)
  printf %s "$PASSWORD" | npm run -s hash-password
  npm run -s hash-password -- PASSWORD         works, but stays in shell history

Only the hash is written to stdout: ADMIN_PASSWORD_HASH="$(npm run -s hash-password)"
`;

/** The command; returns the exit code. Streams are parameters so the tests can drive it. */
export async function hashPasswordCli(
  argv: readonly string[],
  io: { stdin: NodeJS.ReadStream; stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream },
  bcrypt: Bcrypt = loadBcrypt(),
): Promise<number> {
  const args = parseArgs(argv);
  if (args.help) {
    io.stderr.write(USAGE);
    return 0;
  }
  if (args.error) {
    io.stderr.write(`hash-password: ${args.error}\n`);
    return 2;
  }
  let password: string;
  if (args.password !== undefined) {
    io.stderr.write(`${ARGV_WARNING}\n`);
    password = args.password;
  } else if (io.stdin.isTTY) {
    const first = await readHidden('Password: ', io.stdin, io.stderr);
    if (first === null) return 130;
    const problem = passwordProblem(first);
    if (problem) {
      io.stderr.write(`hash-password: ${problem}\n`);
      return 1;
    }
    const again = await readHidden('Again: ', io.stdin, io.stderr);
    if (again === null) return 130;
    if (again !== first) {
      io.stderr.write('hash-password: the two passwords differ\n');
      return 1;
    }
    password = first;
  } else {
    const piped = passwordFromPipe(await readAll(io.stdin));
    if (piped.error) {
      io.stderr.write(`hash-password: ${piped.error}\n`);
      return 1;
    }
    password = piped.password!;
  }
  const problem = passwordProblem(password);
  if (problem) {
    io.stderr.write(`hash-password: ${problem}\n`);
    return 1;
  }
  io.stdout.write(`${await bcrypt.hash(password, BCRYPT_COST)}\n`);
  return 0;
}

if (require.main === module) {
  hashPasswordCli(process.argv.slice(2), { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr }).then(
    (code) => {
      process.exitCode = code;
    },
    (err: Error) => {
      process.stderr.write(`hash-password: ${err.message}\n`);
      process.exitCode = 1;
    },
  );
}
