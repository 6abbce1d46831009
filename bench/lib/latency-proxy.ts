// A TCP proxy that delays every chunk by a fixed time each way: the network between a sidecar and the
// quota service in a cluster, on loopback. Timers of one duration fire in the order they were set, so each
// byte stream keeps its order. It can go down (refusing connections, cutting open ones) and up again on
// the same port, as a service that fails and comes back. The bench and the quota scale test use it.
import { connect, createServer, type Server, type Socket } from 'node:net';

export interface LatencyProxy {
  port: number;
  down(): Promise<void>;
  up(): Promise<void>;
  close(): Promise<void>;
}

export async function latencyProxy(targetPort: number, delayMs: number): Promise<LatencyProxy> {
  const sockets = new Set<Socket>();
  const forward = (from: Socket, to: Socket): void => {
    from.on('data', (chunk) => setTimeout(() => to.destroyed || to.write(chunk), delayMs));
  };
  const server = (): Server =>
    createServer((client) => {
      const upstream = connect(targetPort, '127.0.0.1');
      for (const s of [client, upstream]) {
        sockets.add(s);
        s.on('error', () => undefined);
        s.on('close', () => {
          sockets.delete(s);
          client.destroy();
          upstream.destroy();
        });
      }
      forward(client, upstream);
      forward(upstream, client);
    });
  const stop = (s: Server): Promise<void> =>
    new Promise<void>((resolve) => {
      s.close(() => resolve());
      for (const socket of sockets) socket.destroy();
    });
  let current = server();
  await new Promise<void>((resolve) => current.listen(0, '127.0.0.1', resolve));
  const port = (current.address() as { port: number }).port;
  return {
    port,
    down: () => stop(current),
    async up() {
      current = server();
      await new Promise<void>((resolve) => current.listen(port, '127.0.0.1', resolve));
    },
    close: () => stop(current),
  };
}
