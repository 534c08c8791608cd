/**
 * The least an app between the client and the store can do: a bare node:http process that only
 * relays bytes, with no encryption, no tus, no sign-in and no database. The bench compares it with
 * the raw store operation: the app must stand between sender and store (ARCHITECTURE.md), so
 * where even this relay stays below a target ratio, no app meets it on this machine.
 *
 *   PUT /objects/<key>  the request body written to the store as the raw client writes it
 *                       (@aws-sdk/lib-storage with the same part size and queue, or a stream
 *                       copy into the object directory)
 *   GET /objects/<key>  the stored object, streamed from a plain GET
 *
 * Env: RELAY_STORE (ObjectStoreSettings as JSON), RELAY_PART_SIZE, RELAY_QUEUE. Prints
 * "listening <port>" when ready. Loopback and benchmarks only.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { s3ClientConfig, type ObjectStoreSettings } from '@/lib/storage';

const store = JSON.parse(process.env.RELAY_STORE!) as ObjectStoreSettings;
const partSize = Number(process.env.RELAY_PART_SIZE);
const queueSize = Number(process.env.RELAY_QUEUE);
const s3 = store.kind === 's3' ? new S3Client(s3ClientConfig(store)) : undefined;
const KEY = /^\/objects\/([A-Za-z0-9._-]+)$/;

async function put(key: string, req: http.IncomingMessage): Promise<void> {
  if (store.kind === 's3') {
    await new Upload({ client: s3!, params: { Bucket: store.bucket, Key: key, Body: req }, partSize, queueSize }).done();
  } else {
    await pipeline(req, fs.createWriteStream(path.join(store.directory, key)));
  }
}

async function get(key: string, res: http.ServerResponse): Promise<void> {
  let body: Readable;
  let length: number;
  if (store.kind === 's3') {
    const r = await s3!.send(new GetObjectCommand({ Bucket: store.bucket, Key: key }));
    body = r.Body as Readable;
    length = r.ContentLength!;
  } else {
    const file = path.join(store.directory, key);
    length = (await fs.promises.stat(file)).size;
    body = fs.createReadStream(file, { highWaterMark: 1 << 20 });
  }
  res.writeHead(200, { 'Content-Length': length, 'Content-Type': 'application/octet-stream' });
  await pipeline(body, res);
}

const server = http.createServer((req, res) => {
  const key = KEY.exec(req.url ?? '')?.[1];
  const work = !key ? undefined : req.method === 'PUT' ? put(key, req).then(() => res.writeHead(204).end()) : req.method === 'GET' ? get(key, res) : undefined;
  if (!work) return void res.writeHead(404).end();
  work.catch((err: Error) => {
    process.stderr.write(`relay: ${req.method} ${key}: ${err.message}\n`);
    if (res.headersSent) res.destroy(err);
    else res.writeHead(500).end(err.message);
  });
});
server.listen(0, '127.0.0.1', () => process.stdout.write(`listening ${(server.address() as { port: number }).port}\n`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
