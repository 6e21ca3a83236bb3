/**
 * Preloaded into the app by the bench's --profile mode (`NODE_OPTIONS=--require <this file>`;
 * Node 20 refuses `--cpu-prof` in NODE_OPTIONS). SIGUSR2 starts the V8 CPU profiler, the next
 * SIGUSR2 stops it and writes `app-<pid>-<n>.cpuprofile` into HVB_CPU_PROF_DIR, so the profile
 * covers exactly the load the bench applies. Does nothing without HVB_CPU_PROF_DIR.
 */
import fs from 'fs';
import { Session } from 'inspector';
import path from 'path';

const dir = process.env.HVB_CPU_PROF_DIR;
if (dir) {
  // Tells the bench this process handles SIGUSR2 (whose default action would end it).
  fs.writeFileSync(path.join(dir, `ready-${process.pid}`), '');
  const session = new Session();
  session.connect();
  let running = false;
  let n = 0;
  const fail = (what: string, err: Error | null) => {
    if (err) process.stderr.write(`[cpu-prof-hook] ${what}: ${err.message}\n`);
    return !!err;
  };
  process.on('SIGUSR2', () => {
    if (!running) {
      running = true;
      session.post('Profiler.enable', (e1) => {
        if (fail('enable', e1)) return;
        session.post('Profiler.setSamplingInterval', { interval: 1000 }, (e2) => {
          if (fail('interval', e2)) return;
          session.post('Profiler.start', (e3) => void fail('start', e3));
          // HVB_HEAP_PROF=1: V8's sampling heap profiler over the same span (where the garbage is allocated).
          if (process.env.HVB_HEAP_PROF === '1') {
            session.post('HeapProfiler.startSampling', { samplingInterval: 16384, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true }, (e4) => void fail('heap start', e4));
          }
        });
      });
      return;
    }
    running = false;
    session.post('Profiler.stop', (err, res) => {
      if (fail('stop', err)) return;
      const file = path.join(dir, `app-${process.pid}-${++n}.cpuprofile`);
      fs.writeFileSync(`${file}.tmp`, JSON.stringify(res.profile));
      fs.renameSync(`${file}.tmp`, file);
      session.post('Profiler.disable', () => undefined);
    });
    if (process.env.HVB_HEAP_PROF === '1') {
      session.post('HeapProfiler.stopSampling', (err, res) => {
        if (fail('heap stop', err)) return;
        fs.writeFileSync(path.join(dir, `app-${process.pid}-${n}.heapprofile`), JSON.stringify(res.profile));
      });
    }
  });
}
