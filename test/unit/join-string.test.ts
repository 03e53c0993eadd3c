import assert from 'node:assert/strict';
import { formatJoinString, parseJoinString } from '../../common/src/join-string.js';
import { FerryError } from '../../common/src/errors.js';

const pin = `sha256:${'ab'.repeat(32)}`;
const token = `fy1.abcdefghij.${'A'.repeat(43)}`;

describe('join string', () => {
  it('round-trips addresses, token and pin as one pasteable line', () => {
    const s = formatJoinString({ addresses: ['10.0.0.5:7443', 'ctl.example:7443'], token, caPin: pin });
    assert.match(s, /^ferry:\/\/10\.0\.0\.5:7443,ctl\.example:7443\/\?token=fy1\.[^&]+&ca=sha256:[0-9a-f]{64}$/);
    assert.deepEqual(parseJoinString(`  ${s}\n`), { addresses: ['10.0.0.5:7443', 'ctl.example:7443'], token, caPin: pin });
  });

  it('names the part that is wrong', () => {
    const bad: Array<[string, RegExp]> = [
      ['http://x:1/?token=a&ca=b', /does not start with ferry:\/\//],
      ['ferry://x:1', /no token part/],
      ['ferry://x/?token=a&ca=' + pin, /not host:port/],
      ['ferry://x:1/?ca=' + pin, /no token/],
      ['ferry://x:1/?token=' + token, /no CA pin/],
      ['ferry://x:1/?token=' + token + '&ca=sha256:12', /not of the form sha256/],
    ];
    for (const [s, re] of bad) {
      assert.throws(() => parseJoinString(s), (e: FerryError) => e instanceof FerryError && re.test(e.message), s);
    }
  });
});
