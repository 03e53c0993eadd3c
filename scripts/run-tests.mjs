// Runs the mocha suites from build/ and ends with the line CI reads:
// "N passed, N failed" (", N skipped" when some were skipped).
import Mocha from 'mocha';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

function findTests(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...findTests(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out.sort();
}

// grpc-js sets a TLS server name for IP targets, which makes node warn on
// every connection (DEP0123); the CLIs drop it too. Other warnings print.
process.removeAllListeners('warning');
process.on('warning', (w) => { if (w.code !== 'DEP0123') console.warn(`warning: ${w.message}`); });

const only = process.argv.slice(2);
const mocha = new Mocha({ timeout: 60000, reporter: 'spec' });
for (const f of findTests('build/test')) {
  if (only.length === 0 || only.some((o) => f.includes(o))) mocha.addFile(f);
}
await mocha.loadFilesAsync();
const runner = mocha.run((failures) => {
  const s = runner.stats;
  const skipped = s.pending ? `, ${s.pending} skipped` : '';
  console.log(`${s.passes} passed, ${s.failures} failed${skipped}`);
  process.exit(failures ? 1 : 0);
});
