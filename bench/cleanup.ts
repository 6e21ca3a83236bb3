/**
 * Everything the bench creates (child processes, temp dirs, databases, Redis keys) registers an
 * undo here as soon as it exists. `runCleanups()` runs them newest first, each bounded in time, on
 * normal completion, on failure, and on SIGINT/SIGTERM/SIGHUP.
 */

type Undo = { name: string; fn: () => Promise<void> | void };

const undos: Undo[] = [];
let running: Promise<void> | null = null;

/** Registers an undo; returns a function that runs it now (and unregisters it). */
export function onCleanup(name: string, fn: () => Promise<void> | void): () => Promise<void> {
  const entry: Undo = { name, fn };
  undos.push(entry);
  return async () => {
    const i = undos.indexOf(entry);
    if (i < 0) return;
    undos.splice(i, 1);
    await runOne(entry);
  };
}

async function runOne(u: Undo, timeoutMs = 20_000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      Promise.resolve().then(u.fn),
      new Promise<void>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } catch (err) {
    process.stderr.write(`[bench] cleanup "${u.name}" failed: ${(err as Error).message}\n`);
  } finally {
    if (timer) clearTimeout(timer);
  }
}

/** Runs every registered undo, newest first. Safe to call more than once (later calls wait). */
export function runCleanups(): Promise<void> {
  if (!running) {
    running = (async () => {
      while (undos.length > 0) await runOne(undos.pop()!);
    })();
  }
  return running;
}

/** On a signal: clean up, then exit 128+n. A second signal exits at once. */
export function installSignalHandlers(): void {
  let caught = false;
  const handler = (signal: NodeJS.Signals, code: number) => {
    if (caught) {
      process.stderr.write(`[bench] ${signal} again: exiting without finishing the cleanup\n`);
      process.exit(code);
    }
    caught = true;
    process.stderr.write(`\n[bench] ${signal}: stopping and cleaning up (again to force)\n`);
    void runCleanups().finally(() => process.exit(code));
  };
  process.on('SIGINT', () => handler('SIGINT', 130));
  process.on('SIGTERM', () => handler('SIGTERM', 143));
  process.on('SIGHUP', () => handler('SIGHUP', 129));
}
