/**
 * A bare @tus/server in its own Node process (node:http, no Next), on the same data store the
 * app uses (lib/storage: @tus/s3-store with the app's settings, or @tus/file-store): the bench's
 * yardstick for what hosting tus inside `next start` costs (ARCHITECTURE.md, "the benchmarks
 * decide"). No hooks, no authorisation: loopback and benchmarks only.
 *
 * Env: BARE_TUS_PORT, and either S3_ENDPOINT/S3_BUCKET/S3_REGION/S3_ACCESS_KEY_ID/
 * S3_SECRET_ACCESS_KEY or BARE_TUS_DIRECTORY. Prints "listening <port>" when ready.
 */
import http from 'node:http';
import { Server } from '@tus/server';
import { createObjectStore } from '@/lib/storage';

const e = process.env;
const store = e.S3_BUCKET
  ? createObjectStore({
      kind: 's3',
      endpoint: e.S3_ENDPOINT,
      bucket: e.S3_BUCKET,
      region: e.S3_REGION ?? 'us-east-1',
      accessKeyId: e.S3_ACCESS_KEY_ID,
      secretAccessKey: e.S3_SECRET_ACCESS_KEY,
      forcePathStyle: true,
      checksum: 'WHEN_REQUIRED',
    })
  : createObjectStore({ kind: 'local', directory: e.BARE_TUS_DIRECTORY! });

const tus = new Server({ path: '/api/tus', datastore: store.tusDataStore(), relativeLocation: true, maxSize: 5_100_000_000 });
const server = http.createServer((req, res) => void tus.handle(req, res));
server.listen(Number(e.BARE_TUS_PORT ?? 0), '127.0.0.1', () => {
  const port = (server.address() as { port: number }).port;
  process.stdout.write(`listening ${port}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
