// Writes docs/man/ferry.1 and docs/man/ferry-agent.1 from the CLIs' command
// tables (the same text as --help). Usage: npm run man [-- --check]
//   --check  write nothing; exit 1 if a committed page differs from what the tables give
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { MAN_PAGES } from './man-pages.js';

const check = process.argv.includes('--check');
let stale = 0;
for (const { file, render } of MAN_PAGES) {
  const page = render();
  let current = '';
  try { current = readFileSync(file, 'utf8'); } catch { /* not written yet */ }
  if (current === page) continue;
  if (check) {
    stale++;
    process.stderr.write(`${file} is out of date: run npm run man\n`);
  } else {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, page);
    process.stdout.write(`wrote ${file}\n`);
  }
}
process.exitCode = stale ? 1 : 0;
