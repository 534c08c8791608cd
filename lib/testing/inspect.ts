/**
 * Looks behind a test app's back, as an auditor would: its database (a logical dump, so
 * compression cannot hide anything), its object store and its master key.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { openDb, type Db } from '@/lib/db';
import { masterKeyFrom } from '@/lib/mailboxes/master-key';
import { createObjectStore, type ObjectStore, type ObjectStoreSettings } from '@/lib/storage';
import type { RunningApp } from './app';
import type { S3Settings } from './targets';

/** Environment for an app on a fresh bucket of the given S3 server (created here). */
export async function s3AppEnv(s3: S3Settings): Promise<Record<string, string>> {
  const bucket = `inkast-test-${crypto.randomBytes(5).toString('hex')}`;
  const client = new S3Client({
    endpoint: s3.endpoint,
    region: s3.region,
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
  });
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  client.destroy();
  return {
    S3_ENDPOINT: s3.endpoint,
    S3_BUCKET: bucket,
    S3_REGION: s3.region,
    S3_ACCESS_KEY_ID: s3.accessKeyId,
    S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
  };
}

/** The settings of the app's object store, read from its environment. */
export function appObjectStoreSettings(app: RunningApp): ObjectStoreSettings {
  const e = app.env;
  return e.S3_BUCKET
    ? {
        kind: 's3',
        endpoint: e.S3_ENDPOINT,
        bucket: e.S3_BUCKET,
        region: e.S3_REGION,
        accessKeyId: e.S3_ACCESS_KEY_ID,
        secretAccessKey: e.S3_SECRET_ACCESS_KEY,
        forcePathStyle: true,
        checksum: 'WHEN_REQUIRED',
      }
    : { kind: 'local', directory: path.join(app.dataDir, 'objects') };
}

/** The app's object store, opened from its environment. */
export function appObjectStore(app: RunningApp): ObjectStore {
  return createObjectStore(appObjectStoreSettings(app));
}

/** The app's database; for PGlite the app must be stopped first (one process per directory). */
export function appDatabase(app: RunningApp): Promise<Db> {
  return app.env.DATABASE_URL
    ? openDb({ databaseUrl: app.env.DATABASE_URL })
    : openDb({ pgliteDir: path.join(app.dataDir, 'pglite') });
}

export function appMasterKey(app: RunningApp) {
  return masterKeyFrom(Buffer.from(fs.readFileSync(path.join(app.dataDir, 'master.key'), 'utf8').trim(), 'base64'));
}

/** Every row of every table, as text: bytea both as hex and as bytes read as UTF-8. */
export async function dumpDatabase(db: Db): Promise<string> {
  const tables = (
    await db.query<{ table_name: string }>(
      `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name`,
    )
  ).rows.map((r) => r.table_name);
  let out = '';
  for (const t of tables) {
    for (const row of (await db.query<Record<string, unknown>>(`SELECT * FROM "${t}"`)).rows) {
      for (const v of Object.values(row)) {
        if (v instanceof Uint8Array) out += Buffer.from(v).toString('hex') + '\n' + Buffer.from(v).toString('utf8') + '\n';
        else out += JSON.stringify(v) + '\n';
      }
    }
  }
  return out;
}

/** Every stored object's bytes (the bucket or the local object directory), for plaintext scans. */
export async function* storedBytes(store: ObjectStore): AsyncIterable<{ key: string; bytes: Buffer }> {
  for await (const key of store.listKeys()) {
    const size = await store.size(key);
    if (!size) continue;
    const parts: Buffer[] = [];
    for await (const chunk of await store.readRange(key, 0, size)) parts.push(Buffer.from(chunk));
    yield { key, bytes: Buffer.concat(parts) };
  }
}

/** Flips one byte of a stored object in place, as a failing disk or a tampering admin would. */
export async function corruptObject(app: RunningApp, key: string, offset: number): Promise<void> {
  const e = app.env;
  if (!e.S3_BUCKET) {
    const file = path.join(app.dataDir, 'objects', key);
    const fd = fs.openSync(file, 'r+');
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, offset);
    b[0] ^= 0x01;
    fs.writeSync(fd, b, 0, 1, offset);
    fs.closeSync(fd);
    return;
  }
  const { GetObjectCommand, PutObjectCommand } = await import('@aws-sdk/client-s3');
  const client = new S3Client({
    endpoint: e.S3_ENDPOINT,
    region: e.S3_REGION,
    forcePathStyle: true,
    credentials: { accessKeyId: e.S3_ACCESS_KEY_ID, secretAccessKey: e.S3_SECRET_ACCESS_KEY },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  const got = await client.send(new GetObjectCommand({ Bucket: e.S3_BUCKET, Key: key }));
  const bytes = Buffer.from(await got.Body!.transformToByteArray());
  bytes[offset] ^= 0x01;
  await client.send(new PutObjectCommand({ Bucket: e.S3_BUCKET, Key: key, Body: bytes }));
  client.destroy();
}
