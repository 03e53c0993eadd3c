import 'reflect-metadata';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { generateSigningKey } from '../../common/src/bundle/manifest.js';
import { silentLogger } from '../../common/src/log.js';
import { signPlan } from '../../common/src/plan/signed-plan.js';
import { Backoff } from '../../agent/src/session/backoff.js';
import { SessionLoop } from '../../agent/src/session/session-loop.js';
import { Admin } from '../../controller/src/cli/admin-client.js';
import type { Controller } from '../../controller/src/controller.js';
import { cleanup, enrollAgent, fakeFacts, startController, tempDir, waitFor, type TestAgent } from '../support/fixtures.js';
import { jsonLines } from '../support/json-lines.js';
import { repoRoot, run, type Result } from '../support/proc.js';

const ferryBin = join(repoRoot(), 'bin', 'ferry.js');
/** Screenshots for the closing note; outside the repository on purpose. */
/** Where to keep screenshots of the pages (for a closing note or a review); none when unset. */
const SHOTS = process.env['FERRY_CONSOLE_SHOTS'];

/** Hosts labelled fail=yes fail at step "boom" with a line on stderr (the log tail the page must show). */
const PLAN = `name: tiny
steps:
  - id: one
    type: exec
    args: { argv: [sh, -c, "echo hello from {{ facts.hostname }}"] }
  - id: boom
    type: exec
    args: { argv: [sh, -c, "echo boom on {{ facts.hostname }} >&2; exit 3"] }
    when: { labels: { fail: "yes" } }
`;

/** Wave 1 is the canary; wave 2 waits for an approval (docs/rollouts.md). */
const SPEC = `plan: tiny
targets: { selector: role=edge, hosts: [web-0] }
strategy:
  waves: [1, "100%"]
  approval: true
  errorBudget: 1
`;

/**
 * The web console in headless Chromium (Debian's /usr/bin/chromium driven by
 * playwright-core) against a real controller with its console on
 * 127.0.0.1:0, real in-process agents, and the real `ferry` CLI.
 */
describe('web console in a browser', function () {
  this.timeout(180_000);
  let c: Controller;
  let admin: Admin;
  let browser: Browser;
  const agents: TestAgent[] = [];
  const dir = tempDir('ferry-console-');
  const ferry = (...args: string[]): Promise<Result> => run([process.execPath, ferryBin, '--data', c.config.dataDir, ...args]);

  async function loginLink(...args: string[]): Promise<string> {
    const r = await ferry('operator', 'login', ...args);
    assert.equal(r.code, 0, r.stderr);
    const url = r.stdout.trim();
    assert.match(url, /^https:\/\/127\.0\.0\.1:\d+\/login\?token=[A-Za-z0-9_-]{43}$/, 'only the URL on stdout');
    return url;
  }

  async function newContext(): Promise<BrowserContext> {
    // The console's certificate is issued by the fleet's own CA, which this browser does not trust.
    return browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1400, height: 900 } });
  }

  async function loggedIn(url: string): Promise<Page> {
    const page = await (await newContext()).newPage();
    await page.goto(url);
    await page.waitForURL(/\/fleet$/);
    return page;
  }

  const shot = async (page: Page, name: string) => { if (SHOTS) await page.screenshot({ path: join(SHOTS, name), fullPage: true }); };

  before(async () => {
    if (SHOTS) mkdirSync(SHOTS, { recursive: true });
    c = await startController({ 'console-addr': '127.0.0.1:0' });
    admin = Admin.connect({ adminSocket: c.config.adminSocket });
    const key = generateSigningKey();
    await admin.call(admin.client.addSigningKey, { publicPem: key.publicPem, name: 'ops' });
    await admin.call(admin.client.pushPlan, { signed: signPlan(PLAN, 'tiny.yaml', key.privatePem) });
    for (let i = 0; i < 3; i++) {
      const name = `web-${i}`;
      const a = await enrollAgent(c, name, { start: false, labels: { role: 'edge', ...(i === 2 ? { fail: 'yes' } : {}) } });
      a.loop = new SessionLoop({ state: a.state, facts: async () => fakeFacts(name), log: silentLogger(), backoff: new Backoff(50, 500), root: tempDir('ferry-root-') });
      a.loop.start();
      agents.push(a);
    }
    await waitFor(() => agents.every((a) => a.loop.state === 'connected'), 10_000, 'agents connected');
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
  });
  after(async () => {
    await browser?.close();
    admin?.close();
    await cleanup(c, agents);
    rmSync(dir, { recursive: true, force: true });
  });

  it('watches a rollout started from the CLI live, pauses, resumes and approves it there, and the CLI sees it', async () => {
    const page = await loggedIn(await loginLink('alice', '--role', 'admin'));
    assert.equal(await page.textContent('[data-testid="who"] .role'), 'admin');
    const cookies = await page.context().cookies();
    const session = cookies.find((k) => k.name === '__Host-ferry_session')!;
    assert.ok(session, JSON.stringify(cookies));
    assert.deepEqual([session.httpOnly, session.secure, session.sameSite], [true, true, 'Strict']);

    const specFile = join(dir, 'rollout.yaml');
    writeFileSync(specFile, SPEC);
    const created = await ferry('rollout', 'create', '-f', specFile, '--json');
    assert.equal(created.code, 0, created.stderr);
    const id = (JSON.parse(created.stdout) as { id: string }).id;

    await page.goto(`${c.consoleUrl}/rollouts/${id}`);
    // Marks this document: if anything below reloaded the page, the mark would be gone.
    await page.evaluate(() => { (globalThis as unknown as { ferryMark: number }).ferryMark = 1; });
    const state = page.locator('[data-testid="rollout-state"]');
    await page.locator('[data-testid="stream-state"]', { hasText: 'live' }).waitFor();
    await state.filter({ hasText: 'awaiting-approval' }).waitFor({ timeout: 30_000 });
    assert.equal(await page.locator('tr[data-host="web-0"]').getAttribute('data-view'), 'succeeded');
    assert.equal(await page.locator('tr[data-host="web-1"]').getAttribute('data-view'), 'waiting', 'not begun is waiting, not failed');
    await shot(page, '01-rollout-awaiting-approval.png');

    await page.fill('input[name="reason"]', 'checking the canary');
    await page.click('button[data-action="pause"]');
    await page.locator('[data-testid="pause-reason"]', { hasText: 'checking the canary' }).waitFor();
    await page.locator('#events li', { hasText: 'checking the canary' }).waitFor();
    const paused = JSON.parse((await ferry('rollout', 'show', id, '--json')).stdout) as { rollout: { paused: boolean; pauseReason: string; state: string } };
    assert.deepEqual([paused.rollout.paused, paused.rollout.pauseReason, paused.rollout.state], [true, 'checking the canary', 'awaiting-approval']);
    await shot(page, '02-rollout-paused.png');

    await page.click('button[data-action="resume"]');
    await page.locator('[data-testid="pause-reason"]').waitFor({ state: 'detached' });
    await page.click('button[data-action="approve"]');
    await state.filter({ hasText: /^failed$/ }).waitFor({ timeout: 30_000 });
    await page.locator('[data-testid="stream-state"]', { hasText: 'finished' }).waitFor();
    const failed = page.locator('tr[data-host="web-2"]');
    assert.equal(await failed.getAttribute('data-view'), 'failed');
    assert.match(await failed.textContent() ?? '', /step boom/);
    assert.match(await failed.locator('[data-testid="log-tail"]').textContent() ?? '', /boom on web-2/);
    assert.equal(await page.evaluate(() => (globalThis as unknown as { ferryMark?: number }).ferryMark), 1, 'updated without a reload');
    await shot(page, '03-rollout-finished-failing-host.png');

    const show = JSON.parse((await ferry('rollout', 'show', id, '--json')).stdout) as { rollout: { state: string; paused: boolean }; hosts: Array<{ hostname: string; state: string }> };
    assert.equal(show.rollout.state, 'failed');
    assert.equal(show.rollout.paused, false);
    assert.deepEqual(show.hosts.map((h) => [h.hostname, h.state]).sort(), [['web-0', 'succeeded'], ['web-1', 'succeeded'], ['web-2', 'failed']]);
    const audit = jsonLines((await ferry('audit', 'ls', '--json')).stdout) as Array<{ actor: string; action: string; subject: string }>;
    for (const action of ['rollout.paused', 'rollout.resumed', 'rollout.approved']) {
      assert.ok(audit.some((e) => e.action === action && e.subject === id && e.actor === 'operator:alice (console)'), `${action} audited: ${JSON.stringify(audit.slice(0, 6))}`);
    }

    // The host page: facts, labels, certificate, the jobs that ran there.
    await page.click('tr[data-host="web-2"] a');
    await page.waitForURL(/\/hosts\//);
    const hostText = await page.textContent('main') ?? '';
    assert.match(hostText, /fail=yes/);
    assert.match(hostText, /Debian GNU\/Linux 12/);
    assert.match(await page.textContent('[data-testid="cert-expiry"]') ?? '', /^\d{4}-\d\d-\d\d /);
    assert.ok(await page.locator(`a[href^="/jobs/j-${id}"]`).count() >= 1, 'the rollout\'s job is in the host\'s jobs');
    await shot(page, '04-host.png');
    await page.context().close();
  });

  it('gives a viewer no action buttons and refuses a forged action with 403', async () => {
    const id = (jsonLines((await ferry('rollout', 'ls', '--json')).stdout)[0] as { id: string }).id;
    const page = await loggedIn(await loginLink('vera', '--role', 'viewer'));
    assert.equal(await page.textContent('[data-testid="who"] .role'), 'viewer');
    await page.goto(`${c.consoleUrl}/rollouts/${id}`);
    await page.locator('[data-testid="read-only"]').waitFor();
    assert.equal(await page.locator('button[data-action]').count(), 0);
    await shot(page, '05-viewer-rollout.png');

    const forged = await page.evaluate(async (rid) => {
      // Runs in the page: its DOM is not in this project's TypeScript lib.
      const doc = (globalThis as unknown as { document: { querySelector(s: string): { getAttribute(n: string): string } } }).document;
      const csrf = doc.querySelector('meta[name="ferry-csrf"]').getAttribute('content');
      const post = async (headers: Record<string, string>) => {
        const r = await fetch(`/rollouts/${rid}/retry`, { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body: '{}' });
        return { status: r.status, body: await r.json() as { error: { code: string; message: string } } };
      };
      return { withToken: await post({ 'X-Ferry-CSRF': csrf }), noToken: await post({}) };
    }, id);
    assert.equal(forged.withToken.status, 403);
    assert.equal(forged.withToken.body.error.code, 'PERMISSION_DENIED');
    assert.match(forged.withToken.body.error.message, /Rollouts\/Retry needs the admin role; operator:vera \(console\) has the viewer role/);
    assert.equal(forged.noToken.status, 403);
    assert.match(forged.noToken.body.error.message, /CSRF/);
    const show = JSON.parse((await ferry('rollout', 'show', id, '--json')).stdout) as { rollout: { state: string } };
    assert.equal(show.rollout.state, 'failed', 'nothing was retried');
    const audit = jsonLines((await ferry('audit', 'ls', '--json')).stdout) as Array<{ actor: string }>;
    assert.ok(!audit.some((e) => e.actor.includes('vera')), 'the viewer changed nothing');
    await page.context().close();
  });

  it('opens a login link once only, and refuses an unknown one', async () => {
    const url = await loginLink('lena', '--role', 'viewer');
    const first = await loggedIn(url);
    await first.context().close();
    const again = await (await newContext()).newPage();
    const res = await again.goto(url);
    assert.equal(res!.status(), 401);
    assert.match(await again.textContent('[data-testid="login-error"]') ?? '', /was used already/);
    const forged = await again.goto(url.replace(/token=.*/, `token=${'A'.repeat(43)}`));
    assert.equal(forged!.status(), 401);
    assert.match(await again.textContent('[data-testid="login-error"]') ?? '', /is not one this controller issued/);
    const none = await again.goto(`${c.consoleUrl}/fleet`);
    assert.equal(none!.status(), 401, 'no session, no page');
    await again.context().close();
  });

  it('renders the fleet page at 1,000 hosts quickly, with counts, filters, search and paging', async () => {
    const now = Date.now();
    await c.ctx.db.tx(async (db) => {
      for (let i = 0; i < 1000; i++) {
        await c.ctx.agents.insert(db, {
          id: `ag-seed${String(i).padStart(5, '0')}`, hostname: `edge-${String(i).padStart(4, '0')}`,
          labels: { site: i % 2 ? 'plant-7' : 'plant-9', ring: i < 10 ? 'canary' : 'main' }, facts: fakeFacts(`edge-${i}`),
          agentVersion: '0.1.0', tokenId: null, enrolledAt: now - 86_400_000, certSerial: `seed${i}`, certNotAfter: now + 3 * 86_400_000, keyFingerprint: null,
        });
      }
    });
    const page = await loggedIn(await loginLink('alice', '--role', 'viewer'));
    const t0 = Date.now();
    await page.goto(`${c.consoleUrl}/fleet`);
    const ms = Date.now() - t0;
    assert.ok(ms < 5_000, `the fleet page took ${ms} ms`);
    assert.equal(await page.textContent('[data-count="offline"]'), '1000');
    assert.equal(await page.textContent('[data-count="online"]'), '3');
    assert.equal(await page.locator('table.fleet tbody tr').count(), 100);
    assert.match(await page.textContent('[data-testid="fleet-shown"]') ?? '', /1003 match · page 1 of 11/);
    await shot(page, '06-fleet-1000.png');

    // A host arriving shows up in the counts without a reload.
    await page.locator('[data-testid="fleet-counts"][data-stream="open"]').waitFor();
    await page.evaluate(() => { (globalThis as unknown as { ferryMark: number }).ferryMark = 2; });
    agents.push(await enrollAgent(c, 'late-1'));
    await page.locator('[data-count="online"]', { hasText: /^4$/ }).waitFor();
    assert.equal(await page.textContent('[data-count="total"]'), '1004');
    assert.equal(await page.evaluate(() => (globalThis as unknown as { ferryMark?: number }).ferryMark), 2, 'updated without a reload');

    await page.selectOption('select[name="state"]', 'offline');
    await page.fill('input[name="selector"]', 'ring=canary,site=plant-7');
    await page.click('form.filters button[type="submit"]');
    await page.waitForURL(/selector=/);
    assert.equal(await page.locator('table.fleet tbody tr').count(), 5);
    await page.goto(`${c.consoleUrl}/fleet?q=edge-099`);
    assert.deepEqual(await page.locator('table.fleet tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-host'))),
      ['edge-0990', 'edge-0991', 'edge-0992', 'edge-0993', 'edge-0994', 'edge-0995', 'edge-0996', 'edge-0997', 'edge-0998', 'edge-0999']);
    await page.goto(`${c.consoleUrl}/fleet?page=11`);
    assert.equal(await page.locator('table.fleet tbody tr').count(), 4, 'the last page: late-1 and web-0..2');
    await page.goto(`${c.consoleUrl}/fleet?selector=${encodeURIComponent('site in (')}`);
    assert.match(await page.textContent('[data-testid="filter-error"]') ?? '', /labels: invalid selector/);
    await page.context().close();
    process.stdout.write(`      fleet page with 1003 hosts: ${ms} ms to load\n`);
  });
});
