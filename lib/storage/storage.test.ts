import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { test } from 'node:test';
import {
  DeleteBucketCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
} from '@aws-sdk/client-s3';
import { Upload, type DataStore } from '@tus/server';
import { parseConfig } from '@/lib/config';
import { s3Settings } from '@/lib/testing/targets';
import {
  createObjectStore,
  LocalObjectStore,
  ObjectNotFoundError,
  objectStore,
  objectStoreSettings,
  S3ObjectStore,
  StorageUnavailableError,
  type ObjectStore,
} from './index';

const MiB = 1024 * 1024;

/** What @tus/server does with a PATCH body: a stream in network-sized pieces. */
function body(bytes: Buffer, piece = 64 * 1024): Readable {
  return Readable.from(
    (function* () {
      for (let i = 0; i < bytes.length; i += piece) yield bytes.subarray(i, i + piece);
    })(),
  );
}

/** POST (create) then one write per PATCH, as @tus/server calls the DataStore. Returns the final offset. */
async function tusUpload(ds: DataStore, id: string, declared: number, patches: Buffer[]): Promise<number> {
  await ds.create(new Upload({ id, size: declared, offset: 0, metadata: {} }));
  let offset = 0;
  for (const p of patches) {
    const upload = await ds.getUpload(id);
    assert.equal(upload.offset, offset, 'the store reports the offset the client expects (HEAD)');
    offset = await ds.write(body(p), id, offset);
  }
  return offset;
}

/** Further PATCHes to an upload from `offset` on, as a resuming client sends them. */
tusUpload.continue = async (ds: DataStore, id: string, offset: number, patches: Buffer[]): Promise<number> => {
  for (const p of patches) offset = await ds.write(body(p), id, offset);
  return offset;
};

async function readAll(r: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

async function collect(it: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const k of it) out.push(k);
  return out.sort();
}

const newId = () => crypto.randomBytes(16).toString('hex');

interface Target {
  name: string;
  store: ObjectStore;
  /** The sidecar tus keeps beside a finished object. */
  sidecar: string;
  /** Everything in the bucket / directory, not through the store's own listing. */
  rawKeys(): Promise<string[]>;
  /** Unfinished multipart uploads (S3 only; none locally). */
  unfinished(): Promise<string[]>;
  cleanup(): Promise<void>;
}

async function localTarget(): Promise<Target> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'inkast-storage-'));
  const directory = path.join(dir, 'objects');
  const store = createObjectStore({ kind: 'local', directory });
  const walk = (d: string, rel = ''): string[] =>
    fs.existsSync(d)
      ? fs.readdirSync(d, { withFileTypes: true }).flatMap((e) =>
          e.isDirectory() ? walk(path.join(d, e.name), `${rel}${e.name}/`) : [`${rel}${e.name}`],
        )
      : [];
  return {
    name: 'local',
    store,
    sidecar: '.json',
    rawKeys: async () => walk(directory).sort(),
    unfinished: async () => [],
    cleanup: async () => {
      await store.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function s3Target(): Promise<Target | undefined> {
  const s = await s3Settings();
  if (!s) return undefined;
  const bucket = `inkast-test-${crypto.randomBytes(6).toString('hex')}`;
  const store = createObjectStore({
    kind: 's3',
    endpoint: s.endpoint,
    bucket,
    region: s.region,
    accessKeyId: s.accessKeyId,
    secretAccessKey: s.secretAccessKey,
  }) as S3ObjectStore;
  const client = store.client;
  return {
    name: 's3 (Ceph RGW)',
    store,
    sidecar: '.info',
    async rawKeys() {
      const r = await client.send(new ListObjectsV2Command({ Bucket: bucket }));
      return (r.Contents ?? []).map((o) => o.Key!).sort();
    },
    async unfinished() {
      const r = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
      return (r.Uploads ?? []).map((u) => u.Key!).sort();
    },
    async cleanup() {
      try {
        for (const key of await collect(store.listKeys())) await store.delete(key);
        for (const u of await store.listUnfinishedUploads()) await store.delete(u.key);
        await client.send(new DeleteBucketCommand({ Bucket: bucket }));
      } finally {
        await store.close();
      }
    },
  };
}

const targets = [await localTarget(), await s3Target()].filter((t): t is Target => t !== undefined);

for (const target of targets) {
  test(`object store: ${target.name}`, async (t) => {
    const { store } = target;
    t.after(() => target.cleanup());

    await t.test('ensureReady creates the bucket / directory and may be called again', async () => {
      await store.ensureReady();
      await store.ensureReady();
      assert.deepEqual(await target.rawKeys(), []);
    });

    // 20 MiB + a bit in two PATCHes: on S3 the first leaves a 4 MiB trailing `.part` that the
    // second must pick up; 8 MiB parts put part boundaries at 8 and 16 MiB.
    const id = newId();
    const total = 20 * MiB + 12_345;
    const bytes = crypto.randomBytes(total);
    const slice = (a: number, b: number) => bytes.subarray(a, b);

    await t.test('an upload written through the tus DataStore becomes one object', async () => {
      const ds = store.tusDataStore();
      assert.equal(store.tusDataStore(), ds, 'one DataStore per store');
      const offset = await tusUpload(ds, id, total, [slice(0, 12 * MiB), slice(12 * MiB, total)]);
      assert.equal(offset, total);
      assert.equal((await ds.getUpload(id)).offset, total);
      assert.equal(await store.size(id), total);
      assert.deepEqual(await collect(store.listKeys(id)), [id, id + target.sidecar]);
      assert.deepEqual(await target.unfinished(), []);
    });

    await t.test('readRange returns exactly the bytes written', async () => {
      const cases: Array<[string, number, number]> = [
        ['first byte', 0, 1],
        ['first 10 bytes', 0, 10],
        ['middle', Math.floor(total / 2) - 500, Math.floor(total / 2) + 777],
        ['across the 8 MiB part boundary', 8 * MiB - 3, 8 * MiB + 5],
        ['across the 12 MiB PATCH boundary', 12 * MiB - 1000, 12 * MiB + 1000],
        ['last byte', total - 1, total],
        ['tail', total - 100_000, total],
        ['whole object', 0, total],
      ];
      for (const [what, a, b] of cases) {
        const got = await readAll(await store.readRange(id, a, b));
        assert.equal(got.length, b - a, `${what}: length`);
        assert.ok(got.equals(slice(a, b)), `${what}: bytes`);
      }
      assert.equal((await readAll(await store.readRange(id, 5, 5))).length, 0, 'an empty range is empty');
      assert.equal((await readAll(await store.readRange(id, total, total))).length, 0, 'empty range at the end');
    });

    await t.test('readRange refuses bad ranges and missing keys', async () => {
      await assert.rejects(store.readRange(id, 0, total + 1), RangeError);
      await assert.rejects(store.readRange(id, total, total + 1), RangeError);
      await assert.rejects(store.readRange(id, total + 10, total + 20), RangeError);
      await assert.rejects(store.readRange(id, 10, 5), RangeError);
      await assert.rejects(store.readRange(id, -1, 5), RangeError);
      await assert.rejects(store.readRange(newId(), 0, 1), ObjectNotFoundError);
      await assert.rejects(store.readRange(newId(), 0, 0), ObjectNotFoundError);
      await assert.rejects(store.readRange('../escape', 0, 1), TypeError);
      await assert.rejects(store.size('a/../../b'), TypeError);
    });

    await t.test('size of a missing key is undefined', async () => {
      assert.equal(await store.size(newId()), undefined);
    });

    await t.test('delete removes the object and its sidecars, and may be repeated', async () => {
      await store.delete(id);
      assert.equal(await store.size(id), undefined);
      assert.deepEqual(await collect(store.listKeys(id)), []);
      assert.deepEqual(await target.rawKeys(), []);
      assert.deepEqual(await target.unfinished(), []);
      await store.delete(id);
      await assert.rejects(store.readRange(id, 0, 1), ObjectNotFoundError);
    });

    await t.test('an unfinished upload, deleted, leaves nothing behind', async () => {
      const ds = store.tusDataStore();
      // A: 9 MiB of 20 MiB (S3: one complete 8 MiB part in the multipart upload + a 1 MiB `.part`).
      const a = newId();
      const aBytes = crypto.randomBytes(9 * MiB);
      assert.equal(await tusUpload(ds, a, 20 * MiB, [aBytes]), 9 * MiB);
      assert.equal((await ds.getUpload(a)).offset, 9 * MiB, 'the offset counts the trailing part');
      // B: 3 MiB of 20 MiB (S3: only a `.part`), then terminated through tus first (a tus DELETE).
      const b = newId();
      assert.equal(await tusUpload(ds, b, 20 * MiB, [crypto.randomBytes(3 * MiB)]), 3 * MiB);

      if (store.kind === 's3') {
        assert.deepEqual(await target.rawKeys(), [a + '.info', a + '.part', b + '.info', b + '.part'].sort());
        assert.deepEqual(await target.unfinished(), [a, b].sort());
        assert.equal(await store.size(a), undefined, 'no object on S3 until the upload completes');
      } else {
        assert.deepEqual(await target.rawKeys(), [a, a + '.json', b, b + '.json'].sort());
        assert.equal(await store.size(a), 9 * MiB, 'the local data file grows with the upload');
        assert.ok((await readAll(await store.readRange(a, 0, 9 * MiB))).equals(aBytes));
      }

      await ds.remove(b);
      await store.delete(a);
      await store.delete(b);
      assert.deepEqual(await target.rawKeys(), []);
      assert.deepEqual(await collect(store.listKeys()), []);
      assert.deepEqual(await target.unfinished(), []);
      await assert.rejects(ds.getUpload(a));
    });

    await t.test('a PATCH whose connection drops keeps every byte that arrived', async () => {
      const ds = store.tusDataStore();
      const c = newId();
      const first = crypto.randomBytes(3 * MiB);
      assert.equal(await tusUpload(ds, c, 20 * MiB, [first]), 3 * MiB);
      // The next PATCH sends 2 MiB, then its connection breaks.
      const cut = new PassThrough();
      const writing = ds.write(cut, c, 3 * MiB);
      const second = crypto.randomBytes(2 * MiB);
      cut.write(second);
      await new Promise((r) => setTimeout(r, 200));
      cut.destroy(new Error('connection reset'));
      const offset = await writing.catch(() => undefined);
      const stored = (await ds.getUpload(c)).offset;
      assert.equal(stored, 5 * MiB, 'the server offset did not move backwards');
      if (offset !== undefined) assert.equal(offset, stored);
      assert.equal(await tusUpload.continue(ds, c, stored, [crypto.randomBytes(20 * MiB - stored)]), 20 * MiB);
      const all = await readAll(await store.readRange(c, 0, 5 * MiB));
      assert.ok(all.equals(Buffer.concat([first, second])), 'the bytes before the drop are the ones sent');
      await store.delete(c);
    });

    await t.test('listKeys pages through every key, sidecars included', async () => {
      const ds = store.tusDataStore();
      const ids = Array.from({ length: 5 }, newId);
      for (const k of ids) await tusUpload(ds, k, 3, [Buffer.from('abc')]);
      if (store instanceof S3ObjectStore) store.listPageSize = 2;
      try {
        const expected = ids.flatMap((k) => [k, k + target.sidecar]).sort();
        assert.deepEqual(await collect(store.listKeys()), expected);
        assert.deepEqual(await collect(store.listKeys(ids[0])), [ids[0], ids[0] + target.sidecar]);
        for (const k of ids) await store.delete(k);
        assert.deepEqual(await collect(store.listKeys()), []);
      } finally {
        if (store instanceof S3ObjectStore) store.listPageSize = 1000;
      }
    });

    if (store instanceof S3ObjectStore) {
      await t.test('delete aborts every unfinished multipart upload of the key, and only of that key', async () => {
        const ds = store.tusDataStore();
        const k = newId();
        await tusUpload(ds, k, 20 * MiB, [crypto.randomBytes(MiB)]);
        // A second multipart upload under the same key (a retried POST that reused an id), and
        // an object whose key merely starts with k.
        await ds.create(new Upload({ id: k, size: 10, offset: 0, metadata: {} }));
        await store.client.send(new PutObjectCommand({ Bucket: store.bucket, Key: `${k}x`, Body: 'other' }));
        assert.deepEqual(await target.unfinished(), [k, k]);
        await store.delete(k);
        assert.deepEqual(await target.unfinished(), []);
        assert.deepEqual(await target.rawKeys(), [`${k}x`]);
        await store.delete(`${k}x`);
      });
    }
  });
}

test('a store that cannot be reached says which settings to check', async () => {
  // A port that was free a moment ago: nothing answers there.
  const port = await new Promise<number>((resolve) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(p));
    });
  });
  const store = createObjectStore({
    kind: 's3',
    endpoint: `http://127.0.0.1:${port}`,
    bucket: 'inkast-unreachable',
    region: 'us-east-1',
    accessKeyId: 'x',
    secretAccessKey: 'y',
  });
  try {
    await assert.rejects(store.ensureReady(), (e: unknown) => {
      assert.ok(e instanceof StorageUnavailableError);
      assert.match(e.message, /S3_ENDPOINT=http:\/\/127\.0\.0\.1:\d+/);
      assert.match(e.message, /S3_BUCKET=inkast-unreachable/);
      return true;
    });
  } finally {
    await store.close();
  }

  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'inkast-storage-')), 'a-file');
  fs.writeFileSync(file, '');
  const local = createObjectStore({ kind: 'local', directory: path.join(file, 'objects') });
  await assert.rejects(local.ensureReady(), /INKAST_DATA_DIR/);
  fs.rmSync(path.dirname(file), { recursive: true, force: true });
});

test('the configuration selects the store; objectStore() is one per process', async () => {
  const local = objectStoreSettings(parseConfig({ INKAST_DATA_DIR: '/srv/inkast' }));
  assert.deepEqual(local, { kind: 'local', directory: '/srv/inkast/objects' });
  const s3 = objectStoreSettings(
    parseConfig({ S3_BUCKET: 'inkast', S3_ENDPOINT: 'http://127.0.0.1:7480', AWS_ACCESS_KEY_ID: 'k', AWS_SECRET_ACCESS_KEY: 's' }),
  );
  assert.deepEqual(s3, {
    kind: 's3',
    endpoint: 'http://127.0.0.1:7480',
    bucket: 'inkast',
    region: 'us-east-1',
    accessKeyId: 'k',
    secretAccessKey: 's',
    forcePathStyle: true,
    checksum: 'WHEN_REQUIRED',
  });

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'inkast-storage-'));
  process.env.INKAST_DATA_DIR = dir;
  delete process.env.S3_BUCKET;
  delete process.env.S3_ENDPOINT;
  try {
    const store = objectStore();
    assert.equal(objectStore(), store);
    assert.ok(store instanceof LocalObjectStore);
    assert.equal(store.location, path.join(dir, 'objects'));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
