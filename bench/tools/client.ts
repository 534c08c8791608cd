/**
 * The bench's client machine: the sender (encoder + tus-js-client), the handler downloading, the
 * auditor verifying, and the raw store client they are compared with, all in one lean process of
 * their own, as an integration runs them. In the bench process itself every client paid for the
 * garbage collection of the bench's large heap (a quarter of the sender's main thread), and the
 * raw client paid less of it than the path it is compared with.
 *
 * bench/lib/client.ts forks this file and sends one IPC message per operation, { id, op, args };
 * the answer is { id, value } or { id, error }. Several operations may run at once (parallel
 * senders). It exits when the bench disconnects.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import path from 'node:path';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import * as openpgp from 'openpgp';
import { verifyStoredObject } from '@/lib/crypto/decoder';
import type { CreatedDelivery } from '@/lib/deliveries';
import { createObjectStore, s3ClientConfig, type ObjectStoreSettings, type S3StoreSettings } from '@/lib/storage';
import { openDelivery, pathSource, prepareFile, uploadFile, uploadIdOf } from '@/lib/uploads/client';
import type { TestFile } from '../lib/stack';
import { bareVerify, chunkedGcm, type BareThreads } from './bare-verify';

const MiB = 2 ** 20;
const now = () => performance.now();

/** What a sent file left behind, as the bench needs it (serialisable). */
export interface SentFile {
  delivery: CreatedDelivery;
  uploadId: string;
  /** Ciphertext bytes stored. */
  objectSize: number;
  /** From the tus creation to the last PATCH accepted. */
  seconds: number;
}

const s3Clients = new Map<string, S3Client>();
function s3(settings: S3StoreSettings): S3Client {
  const id = `${settings.endpoint} ${settings.accessKeyId}`;
  let client = s3Clients.get(id);
  if (!client) s3Clients.set(id, (client = new S3Client(s3ClientConfig(settings))));
  return client;
}

async function drain(stream: AsyncIterable<Uint8Array>): Promise<number> {
  let n = 0;
  for await (const chunk of stream) n += chunk.length;
  return n;
}

/** An object's bytes as the raw client reads them: one S3 GET, or the file in 1 MiB reads. */
async function rawBody(store: ObjectStoreSettings, key: string): Promise<AsyncIterable<Uint8Array>> {
  if (store.kind === 'local') return fs.createReadStream(path.join(store.directory, key), { highWaterMark: MiB });
  const r = await s3(store).send(new GetObjectCommand({ Bucket: store.bucket, Key: key }));
  return r.Body as Readable;
}

/**
 * The least encryption any sender does: AES-256-GCM (node:crypto, the cheapest here) over every
 * byte, a new cipher per 4 MiB chunk as the format's; no headers, no tags (one block each), the
 * length unchanged, a random key.
 */
function bareEncryption(): Transform {
  const encrypt = chunkedGcm(false, randomBytes(32), randomBytes(12), 4 * MiB);
  return new Transform({
    transform(piece: Buffer, _encoding, done) {
      encrypt(piece, (out) => this.push(out));
      done();
    },
  });
}

/** An HTTP GET read to its end. */
async function get(url: string, headers: http.OutgoingHttpHeaders = {}): Promise<{ bytes: number; seconds: number }> {
  const t0 = now();
  const bytes = await new Promise<number>((resolve, reject) => {
    const req = http.get(url, { headers }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        return reject(new Error(`GET ${new URL(url).pathname} answered ${res.statusCode}`));
      }
      drain(res).then(resolve, reject);
    });
    req.on('error', reject);
  });
  return { bytes, seconds: (now() - t0) / 1000 };
}

/** The encoder and tus-js-client sending one file from disk to `uploadBaseUrl`'s tus endpoint. */
async function upload(uploadBaseUrl: string, delivery: CreatedDelivery, file: TestFile, chunkSize?: number): Promise<SentFile> {
  const source = await pathSource(file.path, file.name);
  try {
    const prepared = await prepareFile(delivery, source);
    const t0 = now();
    await uploadFile(uploadBaseUrl, delivery, prepared, { chunkSize, retryDelays: [0, 1000, 3000] });
    return { delivery, uploadId: uploadIdOf(prepared), objectSize: prepared.encoder.totalLength, seconds: (now() - t0) / 1000 };
  } finally {
    await source.close();
  }
}

export const ops = {
  /** A sender opening a delivery at the app and uploading one file. */
  async send(a: { appUrl: string; slug: string; senderEmail: string; file: TestFile; chunkSize?: number }): Promise<SentFile> {
    const delivery = await openDelivery(a.appUrl, { slug: a.slug, senderEmail: a.senderEmail, locale: 'sv' });
    return upload(a.appUrl, delivery, a.file, a.chunkSize);
  },

  /** The same upload against a bare tus server, which knows no deliveries: any delivery and key will do. */
  async sendBare(a: { bareUrl: string; publicKey: string; file: TestFile; chunkSize?: number }): Promise<SentFile> {
    const delivery = { deliveryId: 'bench', senderToken: 'bench', publicKeys: [a.publicKey] } as CreatedDelivery;
    return upload(a.bareUrl, delivery, a.file, a.chunkSize);
  },

  /** GET /api/files/<id> as the signed-in handler: the decrypting download, read to its end. */
  download(a: { appUrl: string; cookie: string; fileId: string }): Promise<{ bytes: number; seconds: number }> {
    return get(`${a.appUrl}/api/files/${a.fileId}`, { cookie: a.cookie });
  },

  /** The file's bytes (with `encrypt`, through bareEncryption) PUT to the bare relay (bench/tools/relay.ts), which writes them to the store. */
  async relayWrite(a: { relayUrl: string; file: TestFile; key: string; encrypt: boolean }): Promise<{ seconds: number }> {
    const t0 = now();
    const file = fs.createReadStream(a.file.path, { highWaterMark: MiB });
    await new Promise<void>((resolve, reject) => {
      const req = http.request(`${a.relayUrl}/objects/${a.key}`, { method: 'PUT', headers: { 'content-length': a.file.size } }, (res) => {
        res.resume();
        if (res.statusCode === 204) resolve();
        else reject(new Error(`relay PUT answered ${res.statusCode}`));
      });
      req.on('error', reject);
      (a.encrypt ? pipeline(file, bareEncryption(), req) : pipeline(file, req)).catch(reject);
    });
    return { seconds: (now() - t0) / 1000 };
  },

  /** An object streamed through the bare relay, read to its end. */
  relayRead(a: { relayUrl: string; key: string }): Promise<{ bytes: number; seconds: number }> {
    return get(`${a.relayUrl}/objects/${a.key}`);
  },

  /** The same bytes written straight to the store: @aws-sdk/lib-storage into the bucket, or a stream copy into the object directory. */
  async rawWrite(a: { store: ObjectStoreSettings; file: TestFile; key: string; partSize: number; queueSize: number }): Promise<{ seconds: number }> {
    const body = fs.createReadStream(a.file.path, { highWaterMark: MiB });
    const t0 = now();
    if (a.store.kind === 's3') {
      await new Upload({
        client: s3(a.store),
        params: { Bucket: a.store.bucket, Key: a.key, Body: body },
        partSize: a.partSize,
        queueSize: a.queueSize,
      }).done();
    } else {
      await pipeline(body, fs.createWriteStream(path.join(a.store.directory, a.key)));
    }
    return { seconds: (now() - t0) / 1000 };
  },

  /** A plain GET of an object (its ciphertext), no decryption. */
  async rawRead(a: { store: ObjectStoreSettings; key: string }): Promise<{ bytes: number; seconds: number }> {
    const t0 = now();
    const bytes = await drain(await rawBody(a.store, a.key));
    return { bytes, seconds: (now() - t0) / 1000 };
  },

  /** The same read as rawRead, every byte decrypted and hashed: the least any verification does (bench/tools/bare-verify.ts). */
  async bareVerify(a: { store: ObjectStoreSettings; key: string; threads: BareThreads }): Promise<{ bytes: number; seconds: number }> {
    const t0 = now();
    const bytes = await bareVerify(await rawBody(a.store, a.key), a.threads);
    return { bytes, seconds: (now() - t0) / 1000 };
  },

  /** lib/crypto/decoder's verifyStoredObject over the app's object store: the verify pass without the app. */
  async verify(a: { store: ObjectStoreSettings; key: string; size: number; armoredKeys: string[] }): Promise<{ seconds: number; sha256: string }> {
    const keys = await Promise.all(a.armoredKeys.map((armoredKey) => openpgp.readPrivateKey({ armoredKey })));
    const store = createObjectStore(a.store);
    try {
      const t0 = now();
      const result = await verifyStoredObject({ size: a.size, read: (s, e) => store.readRange(a.key, s, e) }, keys);
      return { seconds: (now() - t0) / 1000, sha256: result.sha256.toString('hex') };
    } finally {
      await store.close();
    }
  },
};

export type ClientOps = typeof ops;
export interface ClientRequest {
  id: number;
  op: keyof ClientOps;
  args: unknown;
}
export type ClientAnswer = { id: number; value: unknown } | { id: number; error: string };

if (!process.send) throw new Error('bench/tools/client.ts runs forked by the bench (bench/lib/client.ts)');
const answer = (a: ClientAnswer) => process.send!(a);
process.on('message', (m: ClientRequest) => {
  const run = ops[m.op] as (args: unknown) => Promise<unknown>;
  run(m.args).then(
    (value) => answer({ id: m.id, value }),
    (err: Error) => answer({ id: m.id, error: err.stack ?? String(err) }),
  );
});
process.on('disconnect', () => process.exit(0));
