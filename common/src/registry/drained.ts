import type { ServerResponse } from 'node:http';

/**
 * Resolves when `res` can take more bytes (`drain`) or is gone (`close`):
 * the one backpressure wait of the bodies the controller and site relays
 * write from their chunk stores.
 */
export function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}
