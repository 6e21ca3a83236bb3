#!/usr/bin/env node
// Copies the editor files (html, icons, locales) beside the compiled node .js files in dist/nodes,
// where Node-RED looks for them.
'use strict';
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const src = path.join(root, 'nodes');
const dst = path.join(root, 'dist', 'nodes');

function copyTree(from, to, keep) {
  for (const entry of fs.readdirSync(from, { withFileTypes: true })) {
    const a = path.join(from, entry.name);
    const b = path.join(to, entry.name);
    if (entry.isDirectory()) {
      copyTree(a, b, keep || entry.name === 'icons' || entry.name === 'locales');
    } else if (keep || entry.name.endsWith('.html')) {
      fs.mkdirSync(to, { recursive: true });
      fs.copyFileSync(a, b);
    }
  }
}

copyTree(src, dst, false);
