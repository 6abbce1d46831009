// What an operator is told when a listener cannot have its address: the address, why, and the flag.
import { describe, expect, it } from 'vitest';
import { ListenError, listenError } from '../../../../common/http/listen.js';

const at = { host: '10.9.8.7', port: 80 };
const errno = (code: string): NodeJS.ErrnoException => Object.assign(new Error(`listen ${code}`), { code });

describe('listen errors', () => {
  it('names the address, the reason and the flag to change', () => {
    expect(String((listenError(errno('EADDRINUSE'), at, '--listen') as Error).message)).toBe('10.9.8.7:80 is already in use by another process; choose another with --listen HOST:PORT');
    expect((listenError(errno('EACCES'), at, '--status-listen') as Error).message).toBe('no permission to listen on 10.9.8.7:80 (ports below 1024 need privileges); choose another with --status-listen HOST:PORT');
    expect((listenError(errno('EADDRNOTAVAIL'), at, undefined) as Error).message).toBe('10.9.8.7 is not an address of this machine');
    expect(listenError(errno('EADDRINUSE'), at, '--listen')).toBeInstanceOf(ListenError);
  });

  it('reads the code from gRPC\'s bind error text, and leaves other errors as they are', () => {
    const grpc = new Error('No address added out of total 1 resolved errors: [listen EADDRINUSE: address already in use 10.9.8.7:80]');
    expect((listenError(grpc, at, '--quota-listen') as Error).message).toContain('already in use by another process; choose another with --quota-listen');
    const other = new Error('something else');
    expect(listenError(other, at, '--listen')).toBe(other);
  });
});
