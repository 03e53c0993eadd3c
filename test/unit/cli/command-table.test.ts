import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { AGENT_CLI } from '../../../agent/src/cli/table.js';
import { AGENT_HANDLERS } from '../../../agent/src/cli/handlers.js';
import { FERRY_HANDLERS } from '../../../controller/src/cli/handlers.js';
import { parseFlags } from '../../../common/src/cli-support.js';
import { adminFlags } from '../../../controller/src/cli/admin-client.js';
import { completionScript } from '../../../common/src/cli/completion.js';
import { dispatch } from '../../../common/src/cli/dispatch.js';
import { allCommands, flagsOf, leaves } from '../../../common/src/cli/spec.js';
import { suggest } from '../../../common/src/cli/suggest.js';
import { editDistance } from '../../../common/src/edit-distance.js';
import { FerryError } from '../../../common/src/errors.js';
import { Exit, exitCodeFor } from '../../../common/src/exit-codes.js';
import { FERRY_CLI } from '../../../controller/src/cli/table.js';
import { MAN_PAGES } from '../../../scripts/man-pages.js';

const CLIS = [FERRY_CLI, AGENT_CLI];

describe('command tables of ferry and ferry-agent', () => {
  it('the committed man pages are what the tables render (run `npm run man` after changing a table)', () => {
    for (const { file, render } of MAN_PAGES) {
      assert.equal(readFileSync(file, 'utf8'), render(), `${file} is out of date: run npm run man`);
    }
  });

  it('every command of the tables has a handler, and every handler a command', () => {
    for (const [cli, handlers] of [[FERRY_CLI, FERRY_HANDLERS], [AGENT_CLI, AGENT_HANDLERS]] as const) {
      // `version` is the dispatcher's unless the CLI has a handler of its own (ferry-agent does).
      const builtin = new Set(['help', 'completion', ...(handlers['version'] ? [] : ['version'])]);
      const paths = leaves(cli).map((l) => l.path).filter((p) => !builtin.has(p[0]!));
      for (const p of paths) assert.ok(handlers[p.join(' ')] ?? handlers[p[0]!], `${cli.name} ${p.join(' ')} has no handler`);
      for (const k of Object.keys(handlers)) assert.ok(paths.some((p) => p.join(' ') === k || p[0] === k), `${cli.name}: handler "${k}" has no command in the table`);
    }
  });

  it('no command takes --help or -h for anything else, and every flag has one line of help', () => {
    for (const cli of CLIS) {
      for (const { path, spec } of leaves(cli)) {
        for (const [name, f] of Object.entries(flagsOf(cli, spec))) {
          assert.notEqual(name, 'help', path.join(' '));
          assert.notEqual(f.short, 'h', `${path.join(' ')} --${name}`);
          assert.ok(f.help && !f.help.includes('\n'), `${cli.name} ${path.join(' ')} --${name} needs one line of help`);
        }
      }
    }
  });

  it('suggests the closest command or flag for a typo, and nothing for a stranger', () => {
    assert.equal(editDistance('rollot', 'rollout'), 1);
    assert.equal(editDistance('agnets', 'agents'), 1, 'a swap is one edit');
    assert.deepEqual(suggest('rollot', ['rollout', 'run', 'token']), ['rollout']);
    assert.deepEqual(suggest('--selecter', ['--selector', '--json']), ['--selector']);
    assert.deepEqual(suggest('pur', ['push', 'ls']), []);
    assert.deepEqual(suggest('frobnicate', FERRY_CLI.commands.map((c) => c.name)), []);
  });

  it('refuses a misspelt subcommand and extra arguments as usage errors (exit 2) before any handler runs', async () => {
    const refused = async (argv: string[]) => {
      const err = await dispatch(FERRY_CLI, {}, argv).then(() => undefined, (e: unknown) => e);
      assert.ok(err instanceof FerryError, `${argv.join(' ')} was not refused`);
      assert.equal(exitCodeFor(err), Exit.Usage);
      return err.message;
    };
    assert.match(await refused(['rollout', 'wach', 'r1']), /unknown command "wach" for "ferry rollout" — did you mean "watch"\?/);
    assert.match(await refused(['token', 'revoke', 'a', 'b']), /unexpected argument "b": ferry token revoke takes one: ID/);
    assert.match(await refused(['exec', 'uname', '--', 'uname']), /unexpected argument "uname": ferry exec takes no arguments/);
    assert.match(await refused(['completion', 'fish']), /bash or zsh/);
  });

  it('a handler whose flags disagree with the table is refused, so help and parser cannot drift apart', async () => {
    const handlers = {
      token: async (args: string[]) => {
        parseFlags(args.slice(1), { ...adminFlags, ttl: { type: 'string' }, label: { type: 'string' }, json: { type: 'boolean' } });
        return 0;
      },
    };
    const err = await dispatch(FERRY_CLI, handlers, ['token', 'create', '--ttl', '1h']).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof FerryError);
    assert.match(err.message, /--uses .* is not what this command parses/);
  });

  it('bash completion, run in bash, completes commands, subcommands and flags from the table', () => {
    const complete = (cli: typeof FERRY_CLI, words: string[]) => {
      const script = `${completionScript(cli, 'bash')}\nCOMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _${cli.name.replaceAll('-', '_')}; printf '%s\\n' "\${COMPREPLY[@]}"`;
      const r = spawnSync('bash', ['--norc', '-c', script], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      return r.stdout.trim().split('\n').filter(Boolean);
    };
    assert.deepEqual(complete(FERRY_CLI, ['ferry', 'rol']), ['rollout']);
    assert.deepEqual(complete(FERRY_CLI, ['ferry', '--data', '/x', 'rollout', 'ap']), ['approve']);
    assert.deepEqual(complete(FERRY_CLI, ['ferry', 'token', 'create', '--t']), ['--ttl']);
    assert.ok(complete(FERRY_CLI, ['ferry', 'agents', 'ls', '--']).includes('--selector'));
    assert.deepEqual(complete(AGENT_CLI, ['ferry-agent', 'install-service', '--no']), ['--no-start']);
  });

  it('the zsh completion script is valid zsh (when zsh is installed) and names every command', function () {
    for (const cli of CLIS) {
      const script = completionScript(cli, 'zsh');
      for (const { path } of allCommands(cli)) assert.ok(script.includes(path[path.length - 1]!), `${cli.name} ${path.join(' ')}`);
      const r = spawnSync('zsh', ['-n'], { input: script, encoding: 'utf8' });
      if (r.error) continue; // no zsh here: the syntax check needs it
      assert.equal(r.status, 0, r.stderr);
    }
  });
});
