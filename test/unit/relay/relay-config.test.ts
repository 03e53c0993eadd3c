import 'reflect-metadata';
import assert from 'node:assert/strict';
import { relayConfigFor } from '../../../controller/src/relays/relay-directory.js';
import type { RelayRecord } from '../../../controller/src/store/relays.js';
import type { AgentRecord } from '../../../controller/src/store/agents.js';

function agent(id: string, labels: Record<string, string>, revoked = false): AgentRecord {
  return {
    id, hostname: id, labels, facts: {} as AgentRecord['facts'], agentVersion: '0.1.0', protocolVersion: 1, previousVersion: '', tokenId: null,
    enrolledAt: 0, lastSeenAt: null, revokedAt: revoked ? 1 : null, certSerial: '', certNotAfter: 0, keyFingerprint: null, reauthAllowedAt: null,
  };
}

function relay(agentId: string, serves: string, address = `${agentId}:7444`): RelayRecord {
  return { agentId, serves, cacheBytes: 1 << 30, listen: '0.0.0.0:7444', advertise: '', registryListen: '', enabledBy: 'test', enabledAt: 0, address, status: null, statusAt: null };
}

describe('controller/relays: which relays a host uses (relayConfigFor), chains included', () => {
  const all = [
    agent('region', { tier: 'region' }),
    agent('gw-a', { site: 'a', tier: 'site-relay' }), agent('gw-b', { site: 'b', tier: 'site-relay' }),
    agent('h-a', { site: 'a' }), agent('h-b', { site: 'b' }),
  ];
  const byId = new Map(all.map((a) => [a.id, a]));
  const relays = [relay('region', 'tier=site-relay'), relay('gw-a', 'site=a'), relay('gw-b', 'site=b')];
  const ids = (id: string, rs = relays, m = byId) => relayConfigFor(m.get(id)!, rs, m, () => true).relays.map((r) => r.agentId);

  it('two levels: hosts use their site relay, site relays use the region relay, the region relay the controller', () => {
    assert.deepEqual(ids('h-a'), ['gw-a']);
    assert.deepEqual(ids('h-b'), ['gw-b']);
    assert.deepEqual(ids('gw-a'), ['region'], 'a site relay is served by the region relay (it is not its own relay: site=a matches it too)');
    assert.deepEqual(ids('region'), []);
    assert.ok(relayConfigFor(byId.get('gw-a')!, relays, byId, () => true).role, 'and it keeps its own relay role');
  });

  it('never a loop: relays that would fetch through each other both go to the controller', () => {
    const m = new Map([...byId, ['x', agent('x', { ring: 'x', pair: 'y' })], ['y', agent('y', { ring: 'y', pair: 'x' })]]);
    const loop = [relay('x', 'ring=y'), relay('y', 'ring=x')];
    assert.deepEqual(ids('x', loop, m), []);
    assert.deepEqual(ids('y', loop, m), []);
    // A longer loop: a → b → c → a.
    const m3 = new Map([...byId, ...['a', 'b', 'c'].map((k) => [k, agent(k, { n: k })] as const)]);
    const ring = [relay('a', 'n=b'), relay('b', 'n=c'), relay('c', 'n=a')];
    const used = ['a', 'b', 'c'].map((k) => ids(k, ring, m3));
    assert.equal(used.flat().length, 0, `no relay of the ring uses another one: ${JSON.stringify(used)}`);
  });

  it('a relay not yet serving, or revoked, is not handed out; a chain skips it', () => {
    const m = new Map(byId);
    m.set('region', agent('region', { tier: 'region' }, true));
    assert.deepEqual(ids('gw-a', relays, m), [], 'revoked region relay: the site relay goes to the controller');
    assert.deepEqual(ids('h-a', [relay('region', 'tier=site-relay'), relay('gw-a', 'site=a', '')]), [], 'a site relay that reported no address yet');
  });
});
