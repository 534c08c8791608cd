import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { exposeNodeExchange, nodeExchange, uncopiedBody } from './node-exchange';

/** A node:http server whose handler, like a route handler, sees only a web Request built from the headers. */
async function serve(handler: (req: Request, res: http.ServerResponse) => Promise<void>) {
  const server = http.createServer((req, res) => {
    const headers = new Headers();
    for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string') headers.set(k, v);
    handler(new Request(`http://localhost${req.url}`, { method: req.method, headers }), res).catch((err: Error) => {
      res.statusCode = 500;
      res.end(err.message);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => new Promise((r) => server.close(r)) };
}

test('only requests on an exposed path reach their Node exchange, and a client cannot name another one', async (t) => {
  exposeNodeExchange('/exposed/');
  const header = (globalThis as { __inkastNodeExchanges?: { header: string } }).__inkastNodeExchanges!.header;
  assert.match(header, /^x-inkast-exchange-[0-9a-f]{24}$/);
  let heldId: string | undefined;
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  t.after(() => release()); // a failed assertion must not leave the held request open
  const s = await serve(async (req, res) => {
    const exchange = nodeExchange(req);
    if (new URL(req.url).pathname === '/exposed/hold') {
      heldId = req.headers.get(header) ?? undefined;
      await released;
    }
    res.end(exchange ? String(exchange.response === res) : 'none');
  });
  t.after(s.close);
  assert.equal(await (await fetch(`${s.url}/exposed/1`)).text(), 'true');
  assert.equal(await (await fetch(`${s.url}/other/1`)).text(), 'none');
  // While one exposed request is open, another request sends its exchange's id: it is dropped
  // before the handler runs, so the forger gets nothing, and the exposed one gets its own.
  const held = fetch(`${s.url}/exposed/hold`).then((r) => r.text());
  while (!heldId) await new Promise((r) => setTimeout(r, 5));
  assert.equal(await (await fetch(`${s.url}/other/1`, { headers: { [header]: heldId } })).text(), 'none');
  assert.equal(await (await fetch(`${s.url}/exposed/2`, { headers: { [header]: heldId } })).text(), 'true');
  release();
  assert.equal(await held, 'true');
});

test('an uploaded body read through uncopiedBody arrives whole, in the buffers the socket delivered', async (t) => {
  exposeNodeExchange('/upload/');
  const s = await serve(async (req, res) => {
    const node = nodeExchange(req)!.request;
    const delivered = new Set<ArrayBufferLike>();
    node.on('data', (chunk: Buffer) => delivered.add(chunk.buffer));
    node.pause(); // the listener above only watches: uncopiedBody pulls
    const hash = crypto.createHash('sha256');
    let n = 0;
    let copies = 0;
    const reader = uncopiedBody(node).getReader();
    for (let r = await reader.read(); !r.done; r = await reader.read()) {
      const chunk = r.value;
      hash.update(chunk);
      n += chunk.length;
      if (!delivered.has(chunk.buffer)) copies++;
    }
    res.end(`${n} ${hash.digest('hex')} ${copies}`);
  });
  t.after(s.close);
  const data = crypto.randomBytes(5 * 1024 * 1024 + 17);
  const answer = await (await fetch(`${s.url}/upload/1`, { method: 'PUT', body: data })).text();
  assert.equal(answer, `${data.length} ${crypto.createHash('sha256').update(data).digest('hex')} 0`);
});
