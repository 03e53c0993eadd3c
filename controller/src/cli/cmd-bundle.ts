import { parseFlags } from '../../../common/src/cli-support.js';
import { writeRecord, writeRecords } from '../../../common/src/cli/json-records.js';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import { Exit } from '../../../common/src/exit-codes.js';
import { BundleState } from '../../../common/src/gen/ferry/v1/session.js';
import type { PrefetchEvent } from '../../../common/src/gen/ferry/v1/admin.js';
import { fromServiceError } from '../../../common/src/grpc-status.js';
import { bytes, table } from '../../../common/src/table.js';
import type { TargetRequest } from '../../../common/src/targets.js';
import { Admin, adminFlags } from './admin-client.js';
import { bundleDetailRecord, bundleRecord, bundleRemovedRecord, type ManifestContents } from './records-delivery.js';
import { listHosts, targetFlags, targetsFromFlags, wantsHostList } from './targets-cli.js';

/** NAME:VERSION → [name, version]. */
export function parseRef(ref: string | undefined): [string, string] {
  const m = /^([^:]+):(.+)$/.exec(ref ?? '');
  if (!m) throw new FerryError(ErrorCode.InvalidArgument, `"${ref ?? ''}" is not NAME:VERSION`, 'e.g. kubeedge-edge:1.22.0 (see ferry bundle ls)');
  return [m[1]!, m[2]!];
}

/** `ferry bundle ls | show | rm | prefetch` (build, push and lint live in cmd-bundle-build.ts). */
export async function cmdBundleAdmin(sub: string, rest: string[]): Promise<number> {
  const { values, positionals } = parseFlags(rest, { ...adminFlags, json: { type: 'boolean' }, force: { type: 'boolean' }, ...targetFlags });
  // Prefetch targets are checked before connecting, so a missing --selector/--host/--all needs no controller.
  const targets = sub === 'prefetch'
    ? targetsFromFlags(values, 'bundle prefetch', `ferry bundle prefetch ${positionals[0] ?? 'NAME:VERSION'} --selector role=edge`) : undefined;
  if (sub === 'prefetch') parseRef(positionals[0]);
  const admin = Admin.connect(values);
  try {
    switch (sub) {
      case 'ls': {
        const { bundles } = await admin.call(admin.client.listBundles, {});
        if (values.json) writeRecords(bundles.map(bundleRecord));
        else process.stdout.write(table([
          ['NAME', 'VERSION', 'ARCH', 'FILES', 'IMAGES', 'SIZE', 'SIGNED BY', 'ID'],
          ...bundles.map((b) => [b.name, b.version, b.arch.join(','), String(b.files), String(b.images), bytes(b.sizeBytes), b.keyId, b.bundleId.slice(0, 12)]),
        ]));
        return Exit.Ok;
      }
      case 'show': {
        const [name, version] = parseRef(positionals[0]);
        const { info, signed } = await admin.call(admin.client.getBundle, { name, version });
        const m = JSON.parse(signed!.manifest) as ManifestContents;
        if (values.json) {
          writeRecord(bundleDetailRecord(info!, m));
          return Exit.Ok;
        }
        process.stdout.write(`${info!.name}:${info!.version}  id ${info!.bundleId}\nsigned by ${info!.keyId}, ${bytes(info!.sizeBytes)} in ${info!.files} files, ${info!.chunks} chunks\n\nimages:\n`);
        process.stdout.write(table([['REF', 'PLATFORM', 'FILE'], ...m.images.flatMap((i) => i.refs.map((r) => [r, `${i.platform.os}/${i.platform.architecture}`, i.file]))]));
        process.stdout.write('\nfiles:\n' + table([['PATH', 'MODE', 'SIZE'], ...m.files.map((f) => [f.path, f.mode.toString(8).padStart(4, '0'), bytes(f.size)])]));
        if (m.rewrites.length) process.stdout.write('\nregistry rewrites:\n' + m.rewrites.map((r) => `  ${r.from} -> ${r.to}\n`).join(''));
        return Exit.Ok;
      }
      case 'rm': {
        const [name, version] = parseRef(positionals[0]);
        const r = await admin.call(admin.client.removeBundle, { name, version, force: Boolean(values.force) });
        if (values.json) writeRecord(bundleRemovedRecord(name, version, r));
        else process.stdout.write(`removed ${name}:${version}; collected ${r.chunksDeleted} unreferenced chunks (${bytes(r.bytesFreed)})\n`);
        return Exit.Ok;
      }
      case 'prefetch':
        return wantsHostList(values) ? await listHosts(admin, targets!, Boolean(values.json))
          : await prefetch(admin, positionals[0], targets!, Boolean(values.json));
      default:
        throw new FerryError(ErrorCode.InvalidArgument, `unknown bundle command "${sub}"`, 'use build, push, lint, ls, show, rm or prefetch');
    }
  } finally {
    admin.close();
  }
}

const STATE: Record<number, string> = { [BundleState.BUNDLE_STATE_FETCHING]: 'fetching', [BundleState.BUNDLE_STATE_READY]: 'ready', [BundleState.BUNDLE_STATE_FAILED]: 'failed' };

/** One host's `ferry bundle prefetch --json` record (docs/json.md, "prefetch.progress"). */
function prefetchRecord(ev: PrefetchEvent) {
  return { type: 'progress', agentId: ev.agentId, hostname: ev.hostname, state: ev.offline ? 'offline' : STATE[ev.state] ?? 'fetching',
    bytesDone: ev.bytesDone, bytesTotal: ev.bytesTotal, bytesFetched: ev.bytesFetched, error: ev.error || null };
}

/** The last `ferry bundle prefetch --json` record: hosts by outcome (docs/json.md, "prefetch.summary"). */
function prefetchSummary(evs: PrefetchEvent[]) {
  const count = (st: BundleState) => evs.filter((e) => !e.offline && e.state === st).length;
  return { type: 'summary', matched: evs.length, ready: count(BundleState.BUNDLE_STATE_READY), failed: count(BundleState.BUNDLE_STATE_FAILED),
    offline: evs.filter((e) => e.offline).length, bytesFetched: evs.reduce((n, e) => n + e.bytesFetched, 0) };
}

async function prefetch(admin: Admin, ref: string | undefined, targets: TargetRequest, json: boolean): Promise<number> {
  const [name, version] = parseRef(ref);
  const last = new Map<string, PrefetchEvent>();
  const tty = Boolean(process.stderr.isTTY) && !json;
  let lastDraw = 0;
  const draw = (force = false) => {
    const evs = [...last.values()];
    const total = evs.reduce((n, e) => n + e.bytesTotal, 0);
    const done = evs.reduce((n, e) => n + e.bytesDone, 0);
    const ready = evs.filter((e) => e.state === BundleState.BUNDLE_STATE_READY).length;
    const failed = evs.filter((e) => e.state === BundleState.BUNDLE_STATE_FAILED).length;
    const pct = total ? Math.floor((done / total) * 100) : 0;
    const line = `prefetch ${name}:${version}: ${ready} ready, ${failed} failed, ${evs.length - ready - failed} fetching — ${pct}% of ${bytes(total)}`;
    if (tty) process.stderr.write(`\r${line}\x1b[K`);
    else if (force || Date.now() - lastDraw > 5000) { process.stderr.write(line + '\n'); lastDraw = Date.now(); }
  };
  const stream = admin.client.prefetch({ name, version, ...targets });
  await new Promise<void>((resolve, reject) => {
    stream.on('data', (ev: PrefetchEvent) => {
      if (ev.final) {
        if (json) writeRecord(prefetchSummary([...last.values()]));
        return;
      }
      if (json) writeRecord(prefetchRecord(ev));
      const prev = last.get(ev.agentId);
      last.set(ev.agentId, ev);
      if (!json && !tty && prev?.state !== ev.state && ev.state !== BundleState.BUNDLE_STATE_FETCHING) {
        process.stderr.write(`${ev.hostname}: ${STATE[ev.state]}${ev.error ? ` — ${ev.error}` : ''} (${bytes(ev.bytesFetched)} over the network)\n`);
      }
      if (!json) draw();
    });
    stream.on('error', (e) => reject(admin.explain(fromServiceError(e))));
    stream.on('end', () => resolve());
  });
  if (!json) {
    draw(true);
    if (tty) process.stderr.write('\n');
    const rows = [...last.values()].sort((a, b) => a.hostname.localeCompare(b.hostname));
    process.stdout.write(table([['HOST', 'STATE', 'FETCHED', 'SIZE', 'DETAIL'],
      ...rows.map((e) => [e.hostname, e.offline ? 'offline' : STATE[e.state] ?? '?', bytes(e.bytesFetched), bytes(e.bytesTotal), e.error])]));
  }
  // (Targets that match no agent never get here: the controller refuses them, exit 2.)
  return [...last.values()].every((e) => e.state === BundleState.BUNDLE_STATE_READY) ? Exit.Ok : Exit.Failure;
}
