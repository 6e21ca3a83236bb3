#!/usr/bin/env node
// `npm start`: builds when the compiled app is missing or older than its sources, then runs
// dist/app/main.js in this process (so signals reach it directly).
'use strict';
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');

const root = path.resolve(__dirname, '..');
const main = path.join(root, 'dist', 'app', 'main.js');
const settings = path.join(root, 'dist', 'settings.js');
// Touched after each build this script runs (tsc's incremental output keeps old mtimes for
// files it did not need to re-emit, so the compiled files cannot serve as the stamp).
const stamp = path.join(root, 'dist', '.build-stamp');

/** Newest modification time of the .ts/.html (and locale/icon) sources under `dir`. */
function newestSource(dir) {
  let newest = 0;
  let entries;
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    if (e.name === 'node_modules' || e.name.startsWith('.')) continue;
    const p = path.join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestSource(p));
    else if (/\.(ts|html|json|svg|png)$/.test(e.name)) {
      newest = Math.max(newest, fs.statSync(p).mtimeMs);
    }
  }
  return newest;
}

function mtime(file) {
  try {
    return fs.statSync(file).mtimeMs;
  } catch {
    return 0;
  }
}

function needsBuild() {
  if (!fs.existsSync(main) || !fs.existsSync(settings)) return 'dist/ is missing';
  const built = mtime(stamp);
  if (built === 0) return 'no build stamp';
  const sources = Math.max(
    newestSource(path.join(root, 'nodes')),
    newestSource(path.join(root, 'app')),
    mtime(path.join(root, 'settings.ts')),
    mtime(path.join(root, 'tsconfig.json')),
  );
  return sources > built ? 'sources changed since the last build' : null;
}

const why = needsBuild();
if (why) {
  console.log(`[hypervolt] building (${why}): npm run build`);
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const r = spawnSync(npm, ['run', 'build'], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error('[hypervolt] the build failed; fix the errors above and run `npm start` again');
    process.exit(r.status || 1);
  }
  fs.writeFileSync(stamp, `${new Date().toISOString()}\n`);
}

require(main).run();
