import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import type { AdminServer, Publication as WirePublication } from '../../../common/src/gen/ferry/v1/admin.js';
import { planPublication } from '../registry/publish.js';
import type { Publication } from '../registry/registry-store.js';
import type { ControllerContext } from './context.js';
import type { OperatorCalls } from './operator-call.js';

type RegistryHandlers = Pick<AdminServer, 'publishBundle' | 'listPublished' | 'unpublishBundle'>;

function wire(p: Publication, skipped: string[] = []): WirePublication {
  return {
    bundleId: p.bundleId, name: p.bundleName, version: p.bundleVersion, anonymous: p.anonymous,
    publishedBy: p.publishedBy, publishedAtMs: p.publishedAt, tags: p.tags, skipped,
  };
}

/**
 * `ferry registry publish|ls|unpublish` (docs/registry.md). Publishing reads
 * the bundle's image tars from the chunk store and writes the publication in
 * one transaction; both changes are audited with the operator's name.
 */
export function registryHandlers(ctx: ControllerContext, kit: OperatorCalls): RegistryHandlers {
  return {
    publishBundle: kit.unary(async (req, who) => {
      const b = await ctx.bundles.require(req.name, req.version);
      const { plan, skipped } = await planPublication(ctx.bundles.chunks, b, { as: req.as, anonymous: req.anonymous });
      const at = Date.now();
      await ctx.registry.publish(plan, who, at);
      const p = (await ctx.registry.publication(b.id))!;
      await ctx.audit.record(who, 'registry.publish', `${req.name}:${req.version}`, {
        id: b.id, anonymous: req.anonymous, as: req.as, tags: p.tags.map((t) => `${t.repository}:${t.tag}`),
      }, at);
      return wire(p, skipped);
    }),
    listPublished: kit.unary(async () => ({ publications: (await ctx.registry.list()).map((p) => wire(p)) })),
    unpublishBundle: kit.unary(async (req, who) => {
      const b = await ctx.bundles.require(req.name, req.version);
      const p = await ctx.registry.publication(b.id);
      if (!p) throw new FerryError(ErrorCode.NotFound, `${req.name}:${req.version} is not published`, 'list publications with `ferry registry ls`');
      await ctx.registry.unpublish(b.id);
      await ctx.audit.record(who, 'registry.unpublish', `${req.name}:${req.version}`, { id: b.id, tags: p.tags.length });
      return wire(p);
    }),
  };
}
