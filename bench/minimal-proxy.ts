// The floor for any Node proxy: node:http in, one undici keep-alive Pool out, bodies piped both ways,
// nothing else. It keeps `content-length` both ways, as an honest proxy does: re-chunking a body whose
// length is known costs a chunked encoder on each side and makes the floor slower than it is.
// Usage: node minimal-proxy.js PORT UPSTREAM_ORIGIN
import { createServer } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { Pool } from 'undici';

const [port = '0', upstream = 'http://127.0.0.1:9000'] = process.argv.slice(2);
const pool = new Pool(upstream, { connections: 128 });

const server = createServer((req, res) => {
  const headers: Record<string, string> = { 'content-type': req.headers['content-type'] ?? 'application/json', authorization: 'Bearer bench' };
  const length = req.headers['content-length'];
  if (length !== undefined) headers['content-length'] = length;
  pool
    .request({
      path: req.url ?? '/',
      method: (req.method ?? 'GET') as 'GET' | 'POST',
      headers,
      body: req.method === 'GET' ? null : req,
    })
    .then(async (up) => {
      const out: Record<string, string> = {};
      const type = up.headers['content-type'];
      if (typeof type === 'string') out['content-type'] = type;
      const size = up.headers['content-length'];
      if (typeof size === 'string') out['content-length'] = size;
      res.writeHead(up.statusCode, out);
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
