import assert from 'node:assert/strict';
import { BundleError } from '../../../common/src/bundle/errors.js';
import { TarReader, readTar, type TarEntry } from '../../../common/src/bundle/tar-reader.js';
import { normalizeEntryName, resolveLinkTarget } from '../../../common/src/bundle/tar-paths.js';
import { makeTar, tarEntry, type TarSpec } from './make-image-tar.js';
import { seededBytes, seededInts } from './prng.js';

interface Read extends TarEntry {
  data: Buffer;
}

/** Parse `tar` fed in pieces of `piece()` bytes; returns entries with their data. */
function parse(tar: Buffer, piece: () => number = () => tar.length): Read[] {
  const out: Read[] = [];
  const r = new TarReader((e) => {
    const parts: Buffer[] = [];
    return { data: (c) => parts.push(Buffer.from(c)), end: () => out.push({ ...e, data: Buffer.concat(parts) }) };
  });
  for (let o = 0; o < tar.length; ) {
    const n = Math.max(1, piece());
    r.push(tar.subarray(o, o + n));
    o += n;
  }
  r.end();
  return out;
}

function rejectsWith(code: string) {
  return (e: unknown) => {
    assert.ok(e instanceof BundleError, `expected BundleError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    return true;
  };
}

/** Rewrite a header's checksum after a test has patched it. */
function rechecksum(tar: Buffer, at: number): void {
  const h = tar.subarray(at, at + 512);
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
}

describe('bundle/tar-reader', () => {
  const big = seededBytes(70_001, 4);
  const sample: TarSpec[] = [
    { name: './dir/', type: 'dir', mode: 0o755 },
    { name: './dir/a.txt', data: 'hello' },
    { name: 'dir/big.bin', data: big },
    { name: 'dir/empty', data: '' },
    { name: 'dir/sub/link', type: 'symlink', linkname: '../a.txt' },
    { name: 'hard', type: 'hardlink', linkname: 'dir/a.txt' },
  ];

  it('reads files, directories and links with normalised names', () => {
    const got = parse(makeTar(sample));
    assert.deepEqual(
      got.map((e) => [e.name, e.type, e.size, e.linkTarget]),
      [
        ['dir', 'directory', 0, undefined],
        ['dir/a.txt', 'file', 5, undefined],
        ['dir/big.bin', 'file', big.length, undefined],
        ['dir/empty', 'file', 0, undefined],
        ['dir/sub/link', 'symlink', 0, 'dir/a.txt'],
        ['hard', 'hardlink', 0, 'dir/a.txt'],
      ],
    );
    assert.equal(got[1]!.data.toString(), 'hello');
    assert.ok(got[2]!.data.equals(big));
    assert.equal(got[0]!.mode, 0o755);
  });

  it('gives identical results however the input is split', () => {
    const tar = makeTar(sample);
    const whole = parse(tar);
    assert.deepEqual(parse(tar, () => 1), whole);
    const rnd = seededInts(9);
    for (let i = 0; i < 5; i++) assert.deepEqual(parse(tar, () => 1 + rnd(3000)), whole);
  });

  it('readTar drives the reader from an async iterable', async () => {
    const names: string[] = [];
    async function* src() {
      yield makeTar(sample);
    }
    await readTar(src(), (e) => void names.push(e.name));
    assert.equal(names.length, sample.length);
  });

  describe('long names', () => {
    const longDir = 'very/'.repeat(30) + 'deep';
    for (const mode of ['pax', 'gnu', 'prefix'] as const) {
      it(`${mode} long names and link targets`, () => {
        const entries: TarSpec[] = [{ name: `${longDir}/file.txt`, data: 'x', longName: mode }];
        if (mode !== 'prefix') entries.push({ name: `${longDir}/ln`, type: 'symlink', linkname: `./${'x'.repeat(120)}`, longName: mode });
        const got = parse(makeTar(entries));
        assert.equal(got[0]!.name, `${longDir}/file.txt`);
        assert.equal(got[0]!.data.toString(), 'x');
        if (mode !== 'prefix') assert.equal(got[1]!.linkTarget, `${longDir}/${'x'.repeat(120)}`);
      });
    }

    it('pax path with UTF-8 and an "=" in it', () => {
      const name = `${'ü'.repeat(60)}/a=b`;
      assert.equal(parse(makeTar([{ name, data: '' }]))[0]!.name, name);
    });

    it('ignores global pax headers', () => {
      const g = tarEntry({ name: 'g', type: 'g', data: '15 path=/etc/x\n' });
      const got = parse(Buffer.concat([g, makeTar([{ name: 'ok', data: '1' }])]));
      assert.deepEqual(got.map((e) => e.name), ['ok']);
    });
  });

  it('reads pre-POSIX directories, Solaris X headers and old-GNU sparse extension blocks', () => {
    const v7dir = makeTar([{ name: 'old/', type: '\0' }]);
    assert.deepEqual(parse(v7dir).map((e) => [e.name, e.type]), [['old', 'directory']]);

    const sun = Buffer.concat([tarEntry({ name: 'X', type: 'X', data: '17 path=sun/file\n' }), makeTar([{ name: 'short', data: 'x' }])]);
    assert.equal(parse(sun)[0]!.name, 'sun/file');

    // 'S' header flagged "isextended", one extension block (no checksum), then the data.
    const sp = tarEntry({ name: 'sp', type: 'S', data: 'abc' });
    sp[482] = 1;
    rechecksum(sp, 0);
    const ext = Buffer.alloc(512, 0);
    ext.write('00000001000', 0, 'latin1');
    const tar = Buffer.concat([sp.subarray(0, 512), ext, sp.subarray(512), makeTar([{ name: 'after', data: 'y' }])]);
    assert.deepEqual(parse(tar).map((e) => [e.name, e.type, e.data.toString()]), [['sp', 'other', 'abc'], ['after', 'file', 'y']]);
  });

  it('reads base-256 (GNU binary) sizes', () => {
    const tar = makeTar([{ name: 'f', data: 'abc' }]);
    tar.fill(0, 124, 136);
    tar[124] = 0x80;
    tar[135] = 3;
    rechecksum(tar, 0);
    assert.equal(parse(tar)[0]!.data.toString(), 'abc');
  });

  it('accepts a single end-of-archive block and ignores what follows two', () => {
    assert.equal(parse(makeTar([{ name: 'f', data: 'x' }], 1)).length, 1);
    const tail = Buffer.concat([makeTar([{ name: 'f', data: 'x' }]), Buffer.from('trailing garbage after the marker')]);
    assert.equal(parse(tail).length, 1);
  });

  describe('hostile and broken input', () => {
    it('truncation anywhere before the end marker is TAR_TRUNCATED', () => {
      const tar = makeTar(sample);
      const rnd = seededInts(3);
      const cuts = [0, 1, 511, 512, 513, 1024, 1536, 2000, tar.length - 1024, ...Array.from({ length: 40 }, () => rnd(tar.length - 1024))];
      for (const cut of cuts) {
        assert.throws(() => parse(tar.subarray(0, cut)), rejectsWith('TAR_TRUNCATED'), `cut at ${cut}`);
      }
    });

    it('a bad header checksum is TAR_MALFORMED', () => {
      const tar = makeTar([{ name: 'f', data: 'x' }]);
      tar[0] ^= 1;
      assert.throws(() => parse(tar), rejectsWith('TAR_MALFORMED'));
      assert.throws(() => parse(seededBytes(4096, 1)), rejectsWith('TAR_MALFORMED'));
    });

    it('a non-octal size is TAR_MALFORMED', () => {
      const tar = makeTar([{ name: 'f', data: 'x' }]);
      tar.write('0000000009x\0', 124, 'latin1');
      rechecksum(tar, 0);
      assert.throws(() => parse(tar), rejectsWith('TAR_MALFORMED'));
    });

    it('data after a zero block is TAR_MALFORMED (hidden entries)', () => {
      const tar = Buffer.concat([tarEntry({ name: 'a', data: '1' }), Buffer.alloc(512), makeTar([{ name: 'hidden', data: '2' }])]);
      assert.throws(() => parse(tar), rejectsWith('TAR_MALFORMED'));
    });

    it('malformed or oversized pax records are TAR_MALFORMED', () => {
      for (const body of ['99 path=x\n', '5 p\n', 'abc path=x\n', '9 path=x']) {
        const tar = Buffer.concat([tarEntry({ name: 'x', type: 'x', data: body }), makeTar([{ name: 'f' }])]);
        assert.throws(() => parse(tar), rejectsWith('TAR_MALFORMED'), body);
      }
      const huge = tarEntry({ name: 'x', type: 'x', data: Buffer.alloc(2 << 20, 0x61) });
      assert.throws(() => parse(Buffer.concat([huge, makeTar([])])), rejectsWith('TAR_MALFORMED'));
    });

    const escapes: Array<[string, TarSpec]> = [
      ['a .. component', { name: '../evil', data: 'x' }],
      ['a nested .. climbing out', { name: 'a/../../evil', data: 'x' }],
      ['a .. that stays inside', { name: 'a/../b', data: 'x' }],
      ['an absolute path', { name: '/etc/passwd', data: 'x' }],
      ['a backslash ..', { name: 'a\\..\\..\\evil', data: 'x' }],
      ['a drive letter', { name: 'C:/Windows/x', data: 'x' }],
      ['.. hidden in a pax path', { name: `${'a/'.repeat(60)}${'../'.repeat(70)}etc/x`, data: 'x', longName: 'pax' }],
      ['.. hidden in a GNU long name', { name: `${'b/'.repeat(60)}../x`, data: 'x', longName: 'gnu' }],
      ['.. in the ustar prefix', { name: `../${'c/'.repeat(60)}x`, data: 'x', longName: 'prefix' }],
      ['a directory named ..', { name: '..', type: 'dir' }],
    ];
    for (const [what, spec] of escapes) {
      it(`entry name with ${what} is TAR_PATH_ESCAPE`, () => {
        assert.throws(() => parse(makeTar([{ name: 'ok', data: '1' }, spec])), rejectsWith('TAR_PATH_ESCAPE'));
      });
    }

    const links: Array<[string, TarSpec]> = [
      ['symlink to an absolute path', { name: 'a/l', type: 'symlink', linkname: '/etc/shadow' }],
      ['symlink climbing out', { name: 'a/l', type: 'symlink', linkname: '../../etc/shadow' }],
      ['symlink climbing out from the root', { name: 'l', type: 'symlink', linkname: '..' }],
      ['hardlink climbing out', { name: 'h', type: 'hardlink', linkname: '../outside' }],
      ['hardlink to an absolute path', { name: 'h', type: 'hardlink', linkname: '/etc/passwd' }],
      ['long symlink target via pax', { name: 'l', type: 'symlink', linkname: `${'d/'.repeat(60)}${'../'.repeat(61)}x`, longName: 'pax' }],
    ];
    for (const [what, spec] of links) {
      it(`${what} is TAR_LINK_ESCAPE`, () => {
        assert.throws(() => parse(makeTar([spec])), rejectsWith('TAR_LINK_ESCAPE'));
      });
    }
  });

  describe('tar-paths', () => {
    it('normalises harmless forms', () => {
      assert.equal(normalizeEntryName('./a//b/./c/'), 'a/b/c');
      assert.equal(normalizeEntryName('./'), '.');
      assert.equal(normalizeEntryName('a..b/..c'), 'a..b/..c');
    });

    it('resolves links that stay inside', () => {
      assert.equal(resolveLinkTarget('a/b/l', '../c', 'symlink'), 'a/c');
      assert.equal(resolveLinkTarget('a/b/l', '../../c', 'symlink'), 'c');
      assert.equal(resolveLinkTarget('a/l', './x/../y', 'symlink'), 'a/y');
      assert.equal(resolveLinkTarget('a/b/h', 'a/x', 'hardlink'), 'a/x');
    });

    it('rejects empty link targets as TAR_MALFORMED', () => {
      assert.throws(() => resolveLinkTarget('l', '', 'symlink'), rejectsWith('TAR_MALFORMED'));
    });
  });
});
