/**
 * Linux /proc readings: resident memory (VmRSS, VmHWM) and CPU time of processes, a sampler that
 * polls a process's RSS, and lookups of process ids (PostgreSQL backends, Redis, the app).
 */
import { execFileSync } from 'child_process';
import fs from 'fs';
import { PeakTracker } from './stats';

let clkTck = 0;
/** Clock ticks per second of /proc/PID/stat times. */
function ticksPerSecond(): number {
  if (!clkTck) {
    try {
      clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clkTck = 100;
    }
  }
  return clkTck;
}

/** VmRSS and VmHWM in bytes; null when the process is gone. */
export function memoryOf(pid: number): { rss: number; hwm: number } | null {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return null;
  }
  const kb = (name: string) => {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text);
    return m ? Number(m[1]) * 1024 : 0;
  };
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

/** Resets the process's VmHWM to its current RSS (own or root-owned processes; false if refused). */
export function resetPeakMemory(pid: number): boolean {
  try {
    fs.writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/** User + system CPU seconds of one process (its own threads, not its waited-for children); null when gone. */
export function cpuSecondsOf(pid: number): number | null {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  return (utime + stime) / ticksPerSecond();
}

function listPids(): number[] {
  return fs
    .readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map(Number);
}

function readProc(pid: number, file: string): string | null {
  try {
    return fs.readFileSync(`/proc/${pid}/${file}`, 'utf8');
  } catch {
    return null;
  }
}

/** Ids of the processes whose command name (/proc/PID/comm) is `comm`. */
export function pidsByComm(comm: string): number[] {
  return listPids().filter((pid) => readProc(pid, 'comm')?.trim() === comm);
}

/**
 * The process running `script` whose environment holds `NAME=value` (the app started by
 * test/support/app.ts, which does not expose its child's pid). Null when none.
 */
export function findProcessByEnv(script: string, name: string, value: string): number | null {
  const needle = `${name}=${value}`;
  for (const pid of listPids()) {
    const cmd = readProc(pid, 'cmdline');
    if (!cmd || !cmd.includes(script)) continue;
    const env = readProc(pid, 'environ');
    if (env && env.split('\0').includes(needle)) return pid;
  }
  return null;
}

/**
 * CPU seconds of a group of processes found anew at each reading (PostgreSQL forks a backend per
 * connection): a snapshot maps pid → seconds; the delta sums what each pid used between two
 * snapshots (a pid born in between counts from zero; one that died in between is not counted).
 */
export type CpuSnapshot = Map<number, number>;

export function cpuSnapshot(pids: readonly number[]): CpuSnapshot {
  const snap: CpuSnapshot = new Map();
  for (const pid of pids) {
    const s = cpuSecondsOf(pid);
    if (s !== null) snap.set(pid, s);
  }
  return snap;
}

export function cpuDelta(before: CpuSnapshot, after: CpuSnapshot): number {
  let total = 0;
  for (const [pid, s] of after) total += s - (before.get(pid) ?? 0);
  return total;
}

/** Polls a process's RSS every `intervalMs` and keeps the peak; `stop()` returns the peak in bytes. */
export class RssSampler {
  private peak = 0;
  private timer: NodeJS.Timeout;

  constructor(private readonly pid: number, intervalMs = 200) {
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
  }

  private sample(): void {
    const m = memoryOf(this.pid);
    if (m && m.rss > this.peak) this.peak = m.rss;
  }

  stop(): number {
    clearInterval(this.timer);
    this.sample();
    return this.peak;
  }
}

/**
 * Polls the RSS of several processes (the instances of one target) together every `intervalMs`:
 * `stop()` returns the peak of their sum at one instant and the peak of each, in bytes.
 */
export class GroupRssSampler {
  private readonly tracker: PeakTracker;
  private timer: NodeJS.Timeout;

  constructor(private readonly pids: readonly number[], intervalMs = 200) {
    this.tracker = new PeakTracker(pids.length);
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
  }

  private sample(): void {
    this.tracker.add(this.pids.map((pid) => memoryOf(pid)?.rss ?? null));
  }

  stop(): { sum: number; each: number[] } {
    clearInterval(this.timer);
    this.sample();
    return { sum: this.tracker.peakSum, each: [...this.tracker.peakEach] };
  }
}
