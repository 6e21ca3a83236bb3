import assert from 'assert/strict';
import { spawn } from 'child_process';
import path from 'path';
import { PassThrough } from 'stream';
import {
  ARGV_WARNING,
  BCRYPT_COST,
  HiddenLine,
  hashPasswordCli,
  loadBcrypt,
  parseArgs,
  passwordFromPipe,
  passwordProblem,
} from '../../app/hash-password';
import { checkEnv } from '../../app/env';

const CLI = path.resolve(__dirname, '..', '..', 'app', 'hash-password.js');
const BCRYPT_RE = /^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$/;

function run(args: string[], input: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input);
  });
}

/** A stream that looks like a terminal to the CLI, and records raw mode switches. */
function fakeTty(): PassThrough & { isTTY: boolean; rawModes: boolean[]; setRawMode(on: boolean): void } {
  const s = new PassThrough() as PassThrough & { isTTY: boolean; rawModes: boolean[]; setRawMode(on: boolean): void };
  s.isTTY = true;
  s.rawModes = [];
  s.setRawMode = (on: boolean) => void s.rawModes.push(on);
  return s;
}

function sink(): PassThrough & { text(): string } {
  const s = new PassThrough() as PassThrough & { text(): string };
  let t = '';
  s.on('data', (d) => (t += d));
  s.text = () => t;
  return s;
}

describe('security: hash-password', () => {
  it('parseArgs', () => {
    assert.deepEqual(parseArgs([]), {});
    assert.deepEqual(parseArgs(['--', 'pw']), { password: 'pw' });
    assert.deepEqual(parseArgs(['pw']), { password: 'pw' });
    assert.deepEqual(parseArgs(['--help']), { help: true });
    assert.ok(parseArgs(['a', 'b']).error);
  });

  it('passwordFromPipe strips one final line break and refuses several lines', () => {
    assert.deepEqual(passwordFromPipe('secret\n'), { password: 'secret' });
    assert.deepEqual(passwordFromPipe('secret\r\n'), { password: 'secret' });
    assert.deepEqual(passwordFromPipe(' sp ace '), { password: ' sp ace ' });
    assert.ok(passwordFromPipe('a\nb\n').error);
  });

  it('passwordProblem: empty, or longer than bcrypt reads', () => {
    assert.match(passwordProblem('')!, /empty/);
    assert.equal(passwordProblem('x'.repeat(72)), null);
    assert.match(passwordProblem('x'.repeat(73))!, /72 bytes/);
    assert.match(passwordProblem('é'.repeat(37))!, /72 bytes/, 'bytes, not characters');
  });

  it('HiddenLine: typing, backspace, Ctrl-U, Enter; Ctrl-C cancels; escape sequences ignored', () => {
    const l = new HiddenLine();
    assert.equal(l.feed('abx'), 'typing');
    assert.equal(l.feed('\u007f'), 'typing');
    assert.equal(l.feed('c\u001b[D\u001b[1;5C\u001bOA'), 'typing'); // arrow keys: whole sequences dropped
    assert.equal(l.value, 'abc');
    l.feed('\u0015');
    assert.equal(l.value, '');
    assert.equal(l.feed('pässwörd\rignored'), 'done');
    assert.equal(l.value, 'pässwörd');
    const c = new HiddenLine();
    assert.equal(c.feed('abc\u0003'), 'cancelled');
    assert.equal(new HiddenLine().feed('\u0004'), 'cancelled');
  });

  it('the bcrypt of Node-RED hashes and verifies', async () => {
    const bcrypt = loadBcrypt();
    const hash = await bcrypt.hash('pw', 4);
    assert.match(hash, BCRYPT_RE);
    assert.equal(await bcrypt.compare('pw', hash), true);
    assert.equal(await bcrypt.compare('pW', hash), false);
  });

  describe('the command', function () {
    this.timeout(30_000);

    it('piped: prints only a bcrypt hash of the password (cost 10), usable as ADMIN_PASSWORD_HASH', async () => {
      const r = await run([], 'correct horse\n');
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stderr, '');
      const hash = r.stdout.trim();
      assert.match(hash, BCRYPT_RE);
      assert.equal(hash.slice(4, 6), String(BCRYPT_COST));
      assert.equal(r.stdout, `${hash}\n`);
      assert.equal(await loadBcrypt().compare('correct horse', hash), true);
      const adminProblems = (h: string) => checkEnv({ ADMIN_USER: 'a', ADMIN_PASSWORD_HASH: h }).filter((p) => /ADMIN/.test(p));
      assert.deepEqual(adminProblems(hash), [], 'the app accepts it');
      assert.equal(adminProblems('not-a-hash').length, 1, 'and would refuse a wrong one');
    });

    it('an argument works but warns (shell history); the password is not echoed', async () => {
      const r = await run(['--', 'argv-pass'], '');
      assert.equal(r.code, 0);
      assert.equal(r.stderr.trim(), ARGV_WARNING);
      assert.equal(await loadBcrypt().compare('argv-pass', r.stdout.trim()), true);
      assert.ok(!r.stdout.includes('argv-pass') && !r.stderr.includes('argv-pass'));
    });

    it('empty input: an error, no hash', async () => {
      const r = await run([], '\n');
      assert.equal(r.code, 1);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, /empty/);
    });

    it('on a terminal: asks twice without echo, in raw mode, and restores the terminal', async () => {
      const stdin = fakeTty();
      const stdout = sink();
      const stderr = sink();
      const done = hashPasswordCli([], { stdin: stdin as unknown as NodeJS.ReadStream, stdout, stderr });
      stdin.write('tty-secret\r');
      await new Promise((r) => setTimeout(r, 20));
      stdin.write('tty-secret\r');
      assert.equal(await done, 0);
      assert.equal(stderr.text(), 'Password: \nAgain: \n');
      assert.ok(!stderr.text().includes('tty-secret') && !stdout.text().includes('tty-secret'));
      assert.deepEqual(stdin.rawModes, [true, false, true, false]);
      assert.equal(await loadBcrypt().compare('tty-secret', stdout.text().trim()), true);
    });

    it('on a terminal: two different passwords are an error', async () => {
      const stdin = fakeTty();
      const stdout = sink();
      const stderr = sink();
      const done = hashPasswordCli([], { stdin: stdin as unknown as NodeJS.ReadStream, stdout, stderr });
      stdin.write('one\r');
      await new Promise((r) => setTimeout(r, 20));
      stdin.write('two\r');
      assert.equal(await done, 1);
      assert.equal(stdout.text(), '');
      assert.match(stderr.text(), /differ/);
    });
  });
});
