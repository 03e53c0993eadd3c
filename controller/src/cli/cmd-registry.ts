import { parseFlags } from '../../../common/src/cli-support.js';
import { writeRecord, writeRecords } from '../../../common/src/cli/json-records.js';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import { Exit } from '../../../common/src/exit-codes.js';
import type { Publication } from '../../../common/src/gen/ferry/v1/admin.js';
import { table } from '../../../common/src/table.js';
import { Admin, adminFlags } from './admin-client.js';
import { parseRef } from './cmd-bundle.js';

/** One `publication` record (docs/json.md): a published bundle and the tags it serves. */
export function publicationRecord(p: Publication): object {
  return {
    bundleId: p.bundleId, name: p.name, version: p.version, anonymous: p.anonymous, publishedBy: p.publishedBy, publishedAtMs: p.publishedAtMs,
    tags: p.tags.map((t) => ({ repository: t.repository, tag: t.tag, digest: t.digest })), skipped: p.skipped,
  };
}

function tagRows(p: Publication): string[][] {
  return p.tags.map((t) => [`${t.repository}:${t.tag}`, t.digest.slice(0, 19), `${p.name}:${p.version}`, p.anonymous ? 'yes' : 'no']);
}

/** `ferry registry publish | ls | unpublish` (docs/registry.md). */
export async function cmdRegistry(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const { values, positionals } = parseFlags(rest, {
    ...adminFlags, json: { type: 'boolean' }, as: { type: 'string', multiple: true }, anonymous: { type: 'boolean' },
  });
  if (sub !== 'publish' && sub !== 'ls' && sub !== 'unpublish') {
    throw new FerryError(ErrorCode.InvalidArgument, `unknown registry command "${sub ?? ''}"`, 'use publish, ls or unpublish');
  }
  const ref = sub === 'ls' ? undefined : parseRef(positionals[0]);
  const admin = Admin.connect(values);
  try {
    if (sub === 'ls') {
      const { publications } = await admin.call(admin.client.listPublished, {});
      if (values.json) writeRecords(publications.map(publicationRecord));
      else process.stdout.write(table([['IMAGE', 'DIGEST', 'BUNDLE', 'ANONYMOUS'], ...publications.flatMap(tagRows)]));
      return Exit.Ok;
    }
    const [name, version] = ref!;
    if (sub === 'publish') {
      const p = await admin.call(admin.client.publishBundle, { name, version, as: (values.as as string[] | undefined) ?? [], anonymous: Boolean(values.anonymous) });
      if (values.json) writeRecord(publicationRecord(p));
      else {
        process.stdout.write(`published ${name}:${version}: ${p.tags.length} tags${p.anonymous ? ', anonymous pull allowed' : ''}; files under /files/${name}/${version}/\n`);
        if (p.tags.length) process.stdout.write(table([['IMAGE', 'DIGEST', 'BUNDLE', 'ANONYMOUS'], ...tagRows(p)]));
        for (const s of p.skipped) process.stderr.write(`warning: not published: ${s}\n`);
      }
      return Exit.Ok;
    }
    const p = await admin.call(admin.client.unpublishBundle, { name, version });
    if (values.json) writeRecord(publicationRecord(p));
    else process.stdout.write(`unpublished ${name}:${version} (${p.tags.length} tags); the bundle stays on the controller\n`);
    return Exit.Ok;
  } finally {
    admin.close();
  }
}
