import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * Structured logs as JSON lines. Always to a file descriptor, never through
 * pino.transport(): transports spawn worker threads that do not survive
 * bundling into the single agent binary.
 */
export function createLogger(opts: { name: string; level?: string; fd?: number }): Logger {
  return pino(
    {
      name: opts.name,
      level: opts.level ?? process.env['FERRY_LOG_LEVEL'] ?? 'info',
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    pino.destination({ fd: opts.fd ?? 2, sync: false }),
  );
}

/** A logger that drops everything, for tests and library callers. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
