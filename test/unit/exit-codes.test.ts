import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ErrorCode, FerryError } from '../../common/src/errors.js';
import { EXIT_CODES, Exit, exitCodeFor, exitCodeHelp, exitCodeMarkdown } from '../../common/src/exit-codes.js';

describe('exit codes: one table', () => {
  it('the README shows exactly the table in common/src/exit-codes.ts', () => {
    const readme = readFileSync('README.md', 'utf8');
    assert.ok(readme.includes(exitCodeMarkdown()), `README's exit code table differs from the code; it should read:\n${exitCodeMarkdown()}`);
  });

  it('codes and names are unique, and --help lists every code', () => {
    assert.equal(new Set(EXIT_CODES.map((e) => e.code)).size, EXIT_CODES.length);
    assert.equal(new Set(EXIT_CODES.map((e) => e.name)).size, EXIT_CODES.length);
    for (const e of EXIT_CODES) assert.match(exitCodeHelp(), new RegExp(`^\\s+${e.code}  `, 'm'));
  });

  it('errors map to codes in the table', () => {
    const known = new Set<number>(EXIT_CODES.map((e) => e.code));
    for (const code of Object.values(ErrorCode)) assert.ok(known.has(exitCodeFor(new FerryError(code, 'x'))), code);
    assert.equal(exitCodeFor(new FerryError(ErrorCode.AgentRevoked, 'x')), Exit.Revoked);
    assert.equal(exitCodeFor(new FerryError(ErrorCode.NotEnrolled, 'x')), Exit.NotEnrolled);
    assert.equal(Exit.Paused, 8);
  });
});
