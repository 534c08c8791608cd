/**
 * A loopback TCP proxy in front of the app that counts the bytes clients send through it: what
 * a browser really put on the wire (Chromium's upload throttling happens before the socket), so
 * bytes sent twice on a resume show up whatever the page or the server report.
 */
import net from 'node:net';

export interface CountingProxy {
  url: string;
  port: number;
  /** Where connections go; may be set after the proxy started (the app's port is known later). */
  target: number;
  /** Bytes received from clients so far (all connections). */
  bytesUp(): number;
  close(): Promise<void>;
}

export async function startCountingProxy(target = 0): Promise<CountingProxy> {
  let up = 0;
  const sockets = new Set<net.Socket>();
  const proxy: CountingProxy = {
    url: '',
    port: 0,
    target,
    bytesUp: () => up,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: '127.0.0.1', port: proxy.target });
    sockets.add(client).add(upstream);
    client.on('data', (chunk) => {
      up += chunk.length;
    });
    client.pipe(upstream);
    upstream.pipe(client);
    const done = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', done).on('close', done);
    upstream.on('error', done).on('close', done);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.port = (server.address() as net.AddressInfo).port;
  proxy.url = `http://127.0.0.1:${proxy.port}`;
  return proxy;
}
