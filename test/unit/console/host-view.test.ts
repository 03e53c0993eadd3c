import assert from 'node:assert/strict';
import type { RolloutHost } from '../../../common/src/gen/ferry/v1/rollouts.js';
import { esc, html } from '../../../controller/src/console/html.js';
import { hostView } from '../../../controller/src/console/pages-rollouts.js';

const host = (state: string, connected: boolean): RolloutHost => ({
  agentId: 'ag-1', hostname: 'edge-1', wave: 0, state, attempt: 1, hostJobId: '', stepIndex: 0, stepCount: 0, stepId: '',
  message: '', connected, startedAtMs: 0, finishedAtMs: 0, lastLines: [],
});

describe('console: how a rollout host reads on the page', () => {
  it('keeps failed, offline and waiting apart', () => {
    assert.equal(hostView(host('failed', false)), 'failed', 'a failed host that is also offline is failed');
    assert.equal(hostView(host('running', false)), 'offline', 'running but unreachable is offline, not failed');
    assert.equal(hostView(host('pending', false)), 'offline');
    assert.equal(hostView(host('pending', true)), 'waiting');
    assert.equal(hostView(host('ready', true)), 'waiting');
    assert.equal(hostView(host('prefetching', true)), 'waiting');
    assert.equal(hostView(host('running', true)), 'running');
    assert.equal(hostView(host('succeeded', false)), 'succeeded', 'a finished host going offline is still finished');
    assert.equal(hostView(host('skipped', true)), 'skipped');
  });

  it('escapes every value put into markup', () => {
    assert.equal(esc(`<script>"x"&'y'`), '&lt;script&gt;&quot;x&quot;&amp;&#39;y&#39;');
    assert.equal(html`<td>${'<b>'}</td>${html`<i>${'&'}</i>`}`.text, '<td>&lt;b&gt;</td><i>&amp;</i>');
  });
});
