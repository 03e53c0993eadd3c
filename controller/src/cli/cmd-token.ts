import { parseFlags } from '../../../common/src/cli-support.js';
import { writeRecord, writeRecords } from '../../../common/src/cli/json-records.js';
import { parseDuration } from '../../../common/src/duration.js';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import { Exit } from '../../../common/src/exit-codes.js';
import type { TokenInfo } from '../../../common/src/gen/ferry/v1/admin.js';
import { labelsToList, listToLabels, parseLabel } from '../../../common/src/labels.js';
import { table } from '../../../common/src/table.js';
import { Admin, adminFlags } from './admin-client.js';

function tokenState(t: TokenInfo, now = Date.now()): string {
  if (t.revokedAtMs) return 'revoked';
  if (t.expiresAtMs <= now) return 'expired';
  if (t.uses >= t.maxUses) return 'used up';
  return 'active';
}

/** `ferry token create | ls | revoke`. */
export async function cmdToken(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const { values, positionals } = parseFlags(rest, {
    ...adminFlags, ttl: { type: 'string' }, uses: { type: 'string' }, label: { type: 'string', multiple: true }, json: { type: 'boolean' },
  });
  const admin = Admin.connect(values);
  try {
    switch (sub) {
      case 'create': {
        const uses = Number(values.uses ?? '1');
        if (!Number.isInteger(uses) || uses < 1) throw new FerryError(ErrorCode.InvalidArgument, `--uses "${values.uses}" is not a positive whole number`);
        const labels = Object.fromEntries((values.label ?? []).map(parseLabel));
        const res = await admin.call(admin.client.createToken, {
          ttlMs: parseDuration(values.ttl ?? '1h', '--ttl'), maxUses: uses, labels: labelsToList(labels),
        });
        // The join string is shell-safe, so the command needs no quotes: the
        // field tech pastes this one line as it is.
        const command = `ferry-agent join ${res.joinString}`;
        if (values.json) {
          writeRecord({ id: res.token!.id, joinString: res.joinString, command, expiresAtMs: res.token!.expiresAtMs, maxUses: uses, labels });
        } else {
          process.stderr.write(`token ${res.token!.id}: ${uses} use(s), expires ${new Date(res.token!.expiresAtMs).toISOString()}; the secret is shown only now.\nOn each host, as root, run:\n`);
          process.stdout.write(`${command}\n`);
        }
        return Exit.Ok;
      }
      case 'ls': {
        const { tokens } = await admin.call(admin.client.listTokens, {});
        if (values.json) {
          writeRecords(tokens.map(tokenRecord));
        } else {
          process.stdout.write(table([
            ['ID', 'STATE', 'USES', 'EXPIRES', 'LABELS'],
            ...tokens.map((t) => [t.id, tokenState(t), `${t.uses}/${t.maxUses}`, new Date(t.expiresAtMs).toISOString(),
              t.labels.map((l) => `${l.key}=${l.value}`).join(',')]),
          ]));
        }
        return Exit.Ok;
      }
      case 'revoke': {
        if (positionals.length !== 1) throw new FerryError(ErrorCode.InvalidArgument, 'token revoke takes one token id', 'see ids with `ferry token ls`');
        const { token } = await admin.call(admin.client.revokeToken, { id: positionals[0]! });
        if (values.json) writeRecord(tokenRecord(token!));
        else process.stdout.write(`token ${token!.id} revoked\n`);
        return Exit.Ok;
      }
      default:
        throw new FerryError(ErrorCode.InvalidArgument, `unknown token command "${sub ?? ''}"`, 'use create, ls or revoke');
    }
  } finally {
    admin.close();
  }
}

/** The `--json` record of a join token (docs/json.md, "token"): no secret, labels as a map, times in epoch ms. */
function tokenRecord(t: TokenInfo) {
  return { id: t.id, state: tokenState(t), uses: t.uses, maxUses: t.maxUses, labels: listToLabels(t.labels),
    createdAtMs: t.createdAtMs, expiresAtMs: t.expiresAtMs, revokedAtMs: t.revokedAtMs || null };
}
