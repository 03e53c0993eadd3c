import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { SHELL_SAFE, formatJoinString, parseJoinString } from '../../common/src/join-string.js';
import { FerryError } from '../../common/src/errors.js';

const pin = `sha256:${'ab'.repeat(32)}`;
const token = `fy1.abcdefghij.${'A_-z9'.repeat(8)}xyz`;

describe('join string', () => {
  it('round-trips addresses (IPv4, names, IPv6), token and pin as one pasteable line', () => {
    const addresses = ['10.0.0.5:7443', 'ctl.example:7443', '[fd00::1]:7443'];
    const s = formatJoinString({ addresses, token, caPin: pin });
    assert.equal(s, `ferry1/10.0.0.5:7443,ctl.example:7443,%5Bfd00::1%5D:7443/${token}/${pin}`);
    assert.match(s, SHELL_SAFE);
    assert.deepEqual(parseJoinString(`  ${s}\n`), { addresses, token, caPin: pin });
  });

  it('survives being pasted unquoted into sh, bash and zsh', () => {
    const s = formatJoinString({ addresses: ['10.0.0.5:7443', '[::1]:7443'], token, caPin: pin });
    for (const shell of ['sh', 'bash', 'zsh']) {
      let out: string;
      try {
        out = execFileSync(shell, ['-c', `printf %s ${s}`], { encoding: 'utf8' });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT' && shell !== 'sh') continue; // shell not installed here
        throw e;
      }
      assert.equal(out, s, shell);
    }
  });

  it('still parses the older ferry://...?token=&ca= form', () => {
    const old = `ferry://10.0.0.5:7443,[fd00::1]:7443/?token=${token}&ca=${pin}`;
    assert.deepEqual(parseJoinString(old), { addresses: ['10.0.0.5:7443', '[fd00::1]:7443'], token, caPin: pin });
  });

  it('names the part that is wrong', () => {
    const bad: Array<[string, RegExp]> = [
      ['http://x:1/?token=a&ca=b', /does not start with ferry1\//],
      ['ferry://x:1', /no token part/],
      ['ferry://x/?token=a&ca=' + pin, /not host:port/],
      ['ferry://x:1/?ca=' + pin, /no token/],
      ['ferry://x:1/?token=' + token, /no CA pin/],
      ['ferry://x:1/?token=' + token + '&ca=sha256:12', /not of the form sha256/],
      ['ferry1/x:1/' + token, /2 part\(s\)/],
      ['ferry1/x/' + token + '/' + pin, /not host:port/],
      ['ferry1//' + token + '/' + pin, /no controller address/],
      ['ferry1/x:1//' + pin, /no token/],
      ['ferry1/x:1/' + token + '/sha256:12', /not of the form sha256/],
      ['ferry1/%5Bx:1/' + token + '/' + pin, /not host:port/],
      ['ferry1/%E0%A4%A:1/' + token + '/' + pin, /broken %-escape/],
    ];
    for (const [s, re] of bad) {
      assert.throws(() => parseJoinString(s), (e: FerryError) => e instanceof FerryError && re.test(e.message), s);
    }
  });
});
