// The floor for any Node proxy: node:http in, one undici keep-alive Pool out, bodies piped both ways,
// nothing else. Usage: node minimal-proxy.js PORT UPSTREAM_ORIGIN
import { createServer } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { Pool } from 'undici';

const [port = '0', upstream = 'http://127.0.0.1:9000'] = process.argv.slice(2);
const pool = new Pool(upstream, { connections: 128 });

const server = createServer((req, res) => {
  pool
    .request({
      path: req.url ?? '/',
      method: (req.method ?? 'GET') as 'GET' | 'POST',
      headers: { 'content-type': req.headers['content-type'] ?? 'application/json', authorization: 'Bearer bench' },
      body: req.method === 'GET' ? null : req,
    })
    .then(async (up) => {
      const type = up.headers['content-type'];
      res.writeHead(up.statusCode, typeof type === 'string' ? { 'content-type': type } : {});
      await pipeline(up.body, res);
    })
    .catch(() => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
});
server.listen(Number(port), '127.0.0.1', () => {
  const addr = server.address();
  process.stdout.write(`${JSON.stringify({ msg: 'minimal proxy listening', port: typeof addr === 'object' && addr ? addr.port : 0 })}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
