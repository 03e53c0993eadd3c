import assert from 'node:assert/strict';
import { Outbox } from '../../agent/src/session/outbox.js';
import type { AgentMessage } from '../../common/src/gen/ferry/v1/session.js';

const line = (jobId: string, seq: number): AgentMessage => ({ msg: { $case: 'output', value: { jobId, seq, stream: 1, line: `l${seq}`, timeMs: 0 } } });
const seqs = (ms: AgentMessage[]) => ms.map((m) => (m.msg?.$case === 'output' ? `${m.msg.value.jobId}:${m.msg.value.seq}` : '?'));

describe('outbox', () => {
  it('sends at once when attached and keeps messages until acked', () => {
    const o = new Outbox();
    const sent: AgentMessage[] = [];
    o.attach((m) => sent.push(m), []);
    o.push('a', 1, line('a', 1));
    o.push('a', 2, line('a', 2));
    assert.deepEqual(seqs(sent), ['a:1', 'a:2']);
    o.ack('a', 1);
    assert.equal(o.size, 1);
    assert.deepEqual([...o.jobIds()], ['a']);
  });

  it('buffers while detached and resends only what the controller lacks, in order', () => {
    const o = new Outbox();
    o.push('a', 1, line('a', 1));
    o.push('b', 1, line('b', 1));
    o.push('a', 2, line('a', 2));
    o.push('a', 3, line('a', 3));
    const sent: AgentMessage[] = [];
    o.attach((m) => sent.push(m), [{ jobId: 'a', seq: 2 }]);
    assert.deepEqual(seqs(sent), ['b:1', 'a:3']);
    o.detach();
    o.push('b', 2, line('b', 2));
    assert.equal(sent.length, 2, 'nothing is sent while detached');
  });
});
