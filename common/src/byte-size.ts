import { ErrorCode, FerryError } from './errors.js';

const UNITS = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 } as const;

/**
 * "512K", "2M", "1.5G", "20GiB" or plain bytes → bytes (binary units); with
 * `rate`, a trailing "/s" is allowed too (bandwidth caps). The one size
 * parser of both CLIs: `flag` names the setting in the error.
 */
export function parseByteSize(text: string, flag: string, opts: { rate?: boolean } = {}): number {
  const m = (opts.rate ? /^(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?(?:\/s)?$/i : /^(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?$/i).exec(text.trim());
  if (!m) {
    throw new FerryError(ErrorCode.InvalidArgument, opts.rate
      ? `${flag} "${text}" is not a rate (write it like 512K, 2M or 1G, bytes per second)`
      : `${flag} "${text}" is not a size (write it like 512M, 20G or 1T; binary units)`);
  }
  return Math.round(Number(m[1]) * UNITS[m[2]!.toUpperCase() as keyof typeof UNITS]);
}
