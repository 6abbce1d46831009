// Starts a server on host:port and resolves with the address actually bound (port 0 picks one).
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface HostPort {
  host: string;
  port: number;
}

/** A listener that could not start, said so that the operator knows what to change (`flag`). */
export class ListenError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ListenError';
  }
}

/**
 * The error of a listener that could not bind `at`, naming the command-line flag that sets it; other
 * errors as they are.
 */
export function listenError(err: unknown, at: HostPort, flag: string | undefined): unknown {
  const code = (err as NodeJS.ErrnoException).code ?? (/EADDRINUSE|EACCES|EADDRNOTAVAIL/.exec(String(err))?.[0] as string | undefined);
  const where = `${at.host}:${at.port}`;
  const fix = flag === undefined ? '' : `; choose another with ${flag} HOST:PORT`;
  if (code === 'EADDRINUSE') return new ListenError(`${where} is already in use by another process${fix}`);
  if (code === 'EACCES') return new ListenError(`no permission to listen on ${where} (ports below 1024 need privileges)${fix}`);
  if (code === 'EADDRNOTAVAIL') return new ListenError(`${at.host} is not an address of this machine${fix}`);
  return err;
}

/** Binds `server` to `at`; `flag` (e.g. --status-listen) is named when the address cannot be had. */
export function listen(server: Server, at: HostPort, flag?: string): Promise<HostPort> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(listenError(err, at, flag));
    server.once('error', onError);
    server.listen(at.port, at.host, () => {
      server.off('error', onError);
      const addr = server.address() as AddressInfo;
      resolve({ host: addr.address, port: addr.port });
    });
  });
}

export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) {
      resolve();
      return;
    }
    server.close(() => resolve());
  });
}
