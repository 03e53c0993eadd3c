import assert from 'node:assert/strict';
import { factAt, matchesWhen, whenMismatch } from '../../../common/src/plan/when.js';

const labels = { role: 'edge', site: 'plant-7', 'topology.kubernetes.io/zone': 'z1' };
const facts = { hostname: 'edge-01', os: { id: 'ubuntu', version: '22.04' }, cores: 4, systemd: true, disks: [{ size: 100 }] };

describe('plan when: matchesWhen', () => {
  it('matches when absent or empty', () => {
    assert.equal(matchesWhen(undefined, labels, facts), true);
    assert.equal(matchesWhen({}, labels, facts), true);
    assert.equal(matchesWhen({ labels: {}, facts: {} }, {}, {}), true);
  });

  it('needs every label and every fact to match', () => {
    assert.equal(matchesWhen({ labels: { role: 'edge', site: 'plant-7' } }, labels, facts), true);
    assert.equal(matchesWhen({ labels: { role: 'edge', site: 'plant-8' } }, labels, facts), false);
    assert.equal(matchesWhen({ labels: { 'topology.kubernetes.io/zone': 'z1' } }, labels, facts), true);
    assert.equal(matchesWhen({ facts: { 'os.id': 'ubuntu', hostname: 'edge-01' } }, labels, facts), true);
    assert.equal(matchesWhen({ labels: { role: 'edge' }, facts: { 'os.id': 'debian' } }, labels, facts), false);
  });

  it('compares facts as text, so numbers and booleans written in a plan match', () => {
    assert.equal(matchesWhen({ facts: { cores: '4', systemd: 'true', 'disks.0.size': '100', 'disks[0].size': '100' } }, labels, facts), true);
    assert.equal(matchesWhen({ facts: { 'os.version': '22.4' } }, labels, facts), false);
  });

  it('treats a missing label or fact, or a fact that is not a scalar, as no match', () => {
    assert.equal(matchesWhen({ labels: { gpu: 'true' } }, labels, facts), false);
    assert.equal(matchesWhen({ facts: { 'os.arch': 'arm64' } }, labels, facts), false);
    assert.equal(matchesWhen({ facts: { os: '[object Object]' } }, labels, facts), false);
    assert.equal(matchesWhen({ facts: { 'os.id.x': 'u' } }, labels, facts), false);
  });

  it('never reads through the prototype', () => {
    assert.equal(factAt(facts, 'constructor'), undefined);
    assert.equal(factAt(facts, 'os.toString'), undefined);
    assert.equal(matchesWhen({ labels: { constructor: 'x' } }, labels, facts), false);
  });

  it('says why a host does not match, first label then fact, in key order', () => {
    assert.equal(whenMismatch({ labels: { site: 'plant-3', role: 'cloud' } }, labels, facts), 'label role is "edge", step wants "cloud"');
    assert.equal(whenMismatch({ labels: { gpu: 'yes' } }, labels, facts), 'host has no label "gpu", step wants gpu=yes');
    assert.equal(whenMismatch({ facts: { 'os.id': 'debian' } }, labels, facts), 'fact os.id is "ubuntu", step wants "debian"');
    assert.equal(whenMismatch({ facts: { arch: 'arm64' } }, labels, facts), 'host has no fact "arch", step wants arch=arm64');
    assert.equal(whenMismatch({ labels: { role: 'edge' } }, labels, facts), undefined);
  });
});
