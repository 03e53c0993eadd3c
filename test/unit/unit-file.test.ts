import assert from 'node:assert/strict';
import { renderUnit } from '../../agent/src/service/unit-file.js';

describe('agent systemd unit', () => {
  const base = { command: ['/usr/local/bin/ferry-agent'], stateDir: '/var/lib/ferry-agent', unitDir: '/etc/systemd/system', name: 'ferry-agent' };

  it('runs the agent on its state directory and does not restart it when retrying is pointless', () => {
    const u = renderUnit(base);
    assert.match(u, /^ExecStart=\/usr\/local\/bin\/ferry-agent run --state \/var\/lib\/ferry-agent$/m);
    assert.match(u, /^RestartPreventExitStatus=3 4$/m);
  });

  it('passes the settings file install-service was given to the service', () => {
    const u = renderUnit({ ...base, configFile: '/etc/ferry/agent settings.yaml' });
    assert.match(u, /^ExecStart=\/usr\/local\/bin\/ferry-agent run --state \/var\/lib\/ferry-agent --config "\/etc\/ferry\/agent settings.yaml"$/m);
  });
});
