import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { AGENT_CLI } from '../../agent/src/cli/table.js';
import { allCommands, flagsOf, type CliSpec } from '../../common/src/cli/spec.js';
import { FERRY_CLI } from '../../controller/src/cli/table.js';
import { tempDir } from '../support/fixtures.js';
import { repoRoot, run, type Result } from '../support/proc.js';

const root = repoRoot();
const BINS: Record<string, string> = { ferry: join(root, 'bin', 'ferry.js'), 'ferry-agent': join(root, 'bin', 'ferry-agent.js') };

/**
 * Both CLIs as processes, with no controller anywhere: FERRY_DATA and
 * FERRY_AGENT_STATE point at an empty directory, so anything that tried to
 * reach a controller or read state would fail instead of printing help.
 */
describe('help, suggestions and argument checks of both CLIs, without any controller', function () {
  this.timeout(180_000);
  const dir = tempDir('ferry-cli-help-');
  const env = { FERRY_DATA: dir, FERRY_AGENT_STATE: dir, FERRY_CONTROLLER: '', FERRY_ADMIN_SOCKET: '' };
  const cli = (name: string, ...args: string[]): Promise<Result> => run([process.execPath, BINS[name]!, ...args], { env });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** Runs `jobs` a few at a time (the machine is shared). */
  async function inBatches<T>(items: T[], job: (t: T) => Promise<void>, width = 4): Promise<void> {
    for (let i = 0; i < items.length; i += width) await Promise.all(items.slice(i, i + width).map(job));
  }

  for (const spec of [FERRY_CLI, AGENT_CLI] as CliSpec[]) {
    it(`${spec.name}: --help of every command and subcommand exits 0 and lists its flags`, async () => {
      await inBatches(allCommands(spec), async ({ path, spec: cmd }) => {
        const r = await cli(spec.name, ...path, '--help');
        const what = `${spec.name} ${path.join(' ')} --help`;
        assert.equal(r.code, 0, `${what}: exit ${r.code}\n${r.stderr}`);
        assert.ok(r.stdout.startsWith(`${spec.name} ${path.join(' ')} — `), `${what}:\n${r.stdout}`);
        assert.match(r.stdout, /^Usage:$/m, what);
        if (cmd.subcommands) for (const s of cmd.subcommands) assert.match(r.stdout, new RegExp(`^  ${s.name} `, 'm'), `${what} lists ${s.name}`);
        else for (const f of Object.keys(flagsOf(spec, cmd))) assert.ok(r.stdout.includes(`--${f}`), `${what} lists --${f}`);
        assert.equal(r.stderr, '', what);
      });
    });

    it(`${spec.name}: help, -h and \`help CMD [SUB]\` print the same help`, async () => {
      const top = await cli(spec.name, '--help');
      assert.equal(top.code, 0);
      for (const { path } of allCommands(spec)) assert.ok(top.stdout.includes(path[path.length - 1]!), `${spec.name} --help mentions ${path.join(' ')}`);
      const { path } = allCommands(spec).find((c) => !c.spec.subcommands && c.spec.flags)!;
      const [a, b, c] = await Promise.all([cli(spec.name, 'help', ...path), cli(spec.name, ...path, '-h'), cli(spec.name, ...path, '--help')]);
      assert.equal(a.code, 0, a.stderr);
      assert.equal(a.stdout, c.stdout);
      assert.equal(b.stdout, c.stdout);
    });

    it(`${spec.name}: completion bash|zsh mentions every command and subcommand`, async () => {
      for (const shell of ['bash', 'zsh']) {
        const r = await cli(spec.name, 'completion', shell);
        assert.equal(r.code, 0, r.stderr);
        for (const { path } of allCommands(spec)) assert.ok(r.stdout.includes(path[path.length - 1]!), `${shell}: ${path.join(' ')}`);
      }
    });
  }

  it('the commands a new user tried first print help instead of reaching for a controller', async () => {
    for (const argv of [['rollout', '--help'], ['bundle', '--help'], ['agents', 'ls', '--help'], ['exec', '--help'], ['--data', '/nonexistent', 'token', 'create', '-h']]) {
      const r = await cli('ferry', ...argv);
      assert.equal(r.code, 0, `ferry ${argv.join(' ')}: ${r.stderr}`);
    }
    const remote = await cli('ferry', 'exec', '--', 'grep', '-h', 'x');
    assert.notEqual(remote.code, 0, 'a -h after -- belongs to the remote command, not to help');
    assert.doesNotMatch(remote.stdout, /Usage:/);
  });

  it('connection flags before the command are global: a command that does not connect ignores them', async () => {
    const out = join(dir, 'k');
    const r = await cli('ferry', '--data', dir, 'key', 'gen', '--out', out);
    assert.equal(r.code, 0, r.stderr);
    const after = await cli('ferry', 'key', 'gen', '--out', out, '--data', dir);
    assert.equal(after.code, 2, 'after the command, only its own flags are accepted');
    assert.match(after.stderr, /unknown flag "--data" for "ferry key gen"/);
  });

  it('a misspelt command, subcommand or flag exits 2 and says what was meant', async () => {
    const cases: Array<[string, string[], RegExp]> = [
      ['ferry', ['rollot', 'ls'], /unknown command "rollot" for "ferry" — did you mean "rollout"\?/],
      ['ferry', ['agents', 'lst'], /unknown command "lst" for "ferry agents" — did you mean "ls"\?/],
      ['ferry', ['agents', 'ls', '--selecter', 'role=edge'], /unknown flag "--selecter" for "ferry agents ls" — did you mean "--selector"\?/],
      ['ferry', ['token', 'create', '--ttll=2h'], /unknown flag "--ttll" .* did you mean "--ttl"\?/],
      ['ferry-agent', ['jion', 'ferry://x'], /unknown command "jion" for "ferry-agent" — did you mean "join"\?/],
      ['ferry-agent', ['status', '--jsno'], /did you mean "--json"\?/],
    ];
    for (const [name, argv, re] of cases) {
      const r = await cli(name, ...argv);
      assert.equal(r.code, 2, `${name} ${argv.join(' ')}: exit ${r.code}\n${r.stderr}`);
      assert.match(r.stderr, re);
      assert.match(r.stderr, /hint: .*--help/);
    }
  });

  it('unexpected extra arguments exit 2 instead of being ignored', async () => {
    const plan = join(root, 'examples', 'demo', 'plan.yaml');
    const one = await cli('ferry', 'plan', 'validate', plan);
    assert.equal(one.code, 0, one.stderr);
    const two = await cli('ferry', 'plan', 'validate', plan, 'b.yaml');
    assert.equal(two.code, 2, two.stdout);
    assert.match(two.stderr, /unexpected argument "b.yaml": ferry plan validate takes one: FILE/);
    assert.doesNotMatch(two.stdout, /valid/);
    for (const [name, argv] of [['ferry-agent', ['status', 'now']], ['ferry-agent', ['join', 'ferry://a', 'ferry://b']], ['ferry', ['rollout', 'ls', 'extra']]] as const) {
      const r = await cli(name, ...argv);
      assert.equal(r.code, 2, `${name} ${argv.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /unexpected argument/);
    }
  });
});
