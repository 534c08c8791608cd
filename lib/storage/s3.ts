import { PassThrough, Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  type BucketLocationConstraint,
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { S3Store, type MetadataValue } from '@tus/s3-store';
import type { DataStore, KvStore } from '@tus/server';
import {
  assertKey,
  assertRange,
  ObjectNotFoundError,
  rangePastEnd,
  StorageUnavailableError,
  type ObjectStore,
  type S3StoreSettings,
} from './types';

/** tus's S3Store keeps `<key>.info` (metadata) and, between PATCHes, `<key>.part` (a short trailing part). */
const SIDECARS = ['.info', '.part'];
const PART_SIZE = 8 * 1024 * 1024;

/** The settings every S3 client of the store uses: ours and the one @tus/s3-store builds. */
export function s3ClientConfig(s: S3StoreSettings): S3ClientConfig {
  const checksum = s.checksum ?? 'WHEN_REQUIRED';
  const cfg: S3ClientConfig = {
    region: s.region,
    forcePathStyle: s.forcePathStyle ?? true,
    requestChecksumCalculation: checksum,
    responseChecksumValidation: checksum,
    // Fail fast when the server is down; no request timeout: a download may stall on a slow reader.
    requestHandler: { connectionTimeout: 5_000 },
  };
  if (s.endpoint) cfg.endpoint = s.endpoint;
  if (s.accessKeyId && s.secretAccessKey) {
    cfg.credentials = { accessKeyId: s.accessKeyId, secretAccessKey: s.secretAccessKey };
  }
  return cfg;
}

function errorName(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const e = error as { name?: unknown; Code?: unknown };
  return typeof e.Code === 'string' ? e.Code : typeof e.name === 'string' ? e.name : undefined;
}
function httpStatus(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata?.httpStatusCode;
}
const isNotFound = (error: unknown): boolean =>
  httpStatus(error) === 404 || ['NotFound', 'NoSuchKey', 'NoSuchUpload'].includes(errorName(error) ?? '');

/**
 * No metadata cache for @tus/s3-store: its default in-memory cache is per process (wrong once
 * several instances serve one upload) and keeps every abandoned upload's entry forever. Without
 * it each tus request reads `<key>.info` again: one small GET.
 */
const noCache: KvStore<MetadataValue> = {
  get: async () => undefined,
  set: async () => {},
  delete: async () => {},
};

/**
 * A PATCH whose connection drops still keeps what arrived. @tus/s3-store deletes the trailing
 * `.part` before reading the new body and prepends it to that body; a body error would then lose
 * both, moving the offset backwards (a resumed upload re-sends up to a whole part). Ending the
 * body at the error instead stores every byte received, as a local file store does.
 */
class KeepReceivedS3Store extends S3Store {
  override write(src: Readable, id: string, offset: number): Promise<number> {
    const received = new PassThrough();
    src.once('error', () => {
      src.unpipe(received);
      received.end();
    });
    return super.write(src.pipe(received), id, offset);
  }
}

export class S3ObjectStore implements ObjectStore {
  readonly kind = 's3' as const;
  readonly bucket: string;
  readonly client: S3Client;
  private readonly settings: S3StoreSettings;
  private dataStore: S3Store | undefined;
  /** Keys per list request (S3's maximum is 1000); tests lower it to exercise pagination. */
  listPageSize = 1000;

  constructor(settings: S3StoreSettings) {
    this.settings = settings;
    this.bucket = settings.bucket;
    this.client = new S3Client(s3ClientConfig(settings));
  }

  get location(): string {
    return `s3://${this.bucket} at ${this.settings.endpoint ?? `AWS ${this.settings.region}`}`;
  }

  async ensureReady(): Promise<void> {
    const where = `S3_ENDPOINT=${this.settings.endpoint ?? '(AWS default)'} S3_BUCKET=${this.bucket}`;
    const fail = (what: string, error: unknown): never => {
      const status = httpStatus(error);
      const hint =
        status === 403
          ? ' (access denied: check S3_ACCESS_KEY_ID / S3_SECRET_ACCESS_KEY and the bucket owner)'
          : status === undefined
            ? ' (is the S3 server running and reachable?)'
            : '';
      const detail = [errorName(error), status && `HTTP ${status}`, (error as Error)?.message].filter(Boolean).join(', ');
      throw new StorageUnavailableError(`S3 storage not ready, ${what} (${where}): ${detail}${hint}`, { cause: error });
    };
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
      return;
    } catch (error) {
      if (!isNotFound(error)) fail('cannot reach the bucket', error);
    }
    try {
      try {
        await this.client.send(new CreateBucketCommand({ Bucket: this.bucket }));
      } catch (error) {
        // AWS outside us-east-1 wants the region as location constraint; Ceph and most
        // S3-compatible servers want none (or only their zonegroup's name): try without first.
        if (errorName(error) !== 'IllegalLocationConstraintException') throw error;
        await this.client.send(
          new CreateBucketCommand({
            Bucket: this.bucket,
            CreateBucketConfiguration: { LocationConstraint: this.settings.region as BucketLocationConstraint },
          }),
        );
      }
    } catch (error) {
      const name = errorName(error);
      // Someone else created it meanwhile (or the server reports our own bucket this way).
      if (name !== 'BucketAlreadyOwnedByYou' && name !== 'BucketAlreadyExists') fail('cannot create the bucket', error);
      try {
        await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
      } catch (again) {
        fail('the bucket exists but is not accessible', again);
      }
    }
  }

  tusDataStore(): DataStore {
    this.dataStore ??= new KeepReceivedS3Store({
      s3ClientConfig: { ...s3ClientConfig(this.settings), bucket: this.bucket },
      partSize: PART_SIZE,
      // No expiration tags (Ceph/Swift differences); the cleanup job deletes abandoned uploads.
      useTags: false,
      cache: noCache,
    });
    return this.dataStore;
  }

  async size(key: string): Promise<number | undefined> {
    assertKey(key);
    try {
      const r = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return r.ContentLength;
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  async readRange(key: string, start: number, endExclusive: number): Promise<Readable> {
    assertKey(key);
    assertRange(start, endExclusive);
    if (start === endExclusive) {
      // "bytes=5-4" is not a range S3 accepts: answer an empty range without a GET.
      const size = await this.size(key);
      if (size === undefined) throw new ObjectNotFoundError(key);
      if (endExclusive > size) throw rangePastEnd(key, endExclusive, size);
      return Readable.from([]);
    }
    let r;
    try {
      r = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: key, Range: `bytes=${start}-${endExclusive - 1}` }),
      );
    } catch (error) {
      if (isNotFound(error)) throw new ObjectNotFoundError(key);
      if (httpStatus(error) === 416 || errorName(error) === 'InvalidRange') {
        throw new RangeError(`Byte range [${start}, ${endExclusive}) starts past the end of "${key}"`);
      }
      throw error;
    }
    const body = r.Body as Readable | undefined;
    // S3 shortens a range that runs past the end; we refuse it, as the local store does.
    const total = /\/(\d+)$/.exec(r.ContentRange ?? '')?.[1];
    if (total !== undefined && endExclusive > Number(total)) {
      body?.destroy();
      throw rangePastEnd(key, endExclusive, Number(total));
    }
    if (!body) throw new Error(`S3 returned no body for "${key}"`);
    return body;
  }

  async delete(key: string): Promise<void> {
    assertKey(key);
    // First abort every unfinished multipart upload of the key (tus leaves them on DELETE of an
    // unfinished upload; they hold the parts' bytes and are invisible to ListObjects).
    const unfinished = (await this.listUnfinishedUploads(key)).filter((u) => u.key === key);
    await Promise.all(
      unfinished.map(({ uploadId }) =>
        this.client
          .send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId }))
          .catch((error) => {
            if (!isNotFound(error)) throw error;
          }),
      ),
    );
    // Then the object and the sidecars. Single deletes: DeleteObjects needs Content-MD5 or a
    // checksum header that not every S3-compatible server accepts; DeleteObject is idempotent.
    await Promise.all(
      [key, ...SIDECARS.map((s) => key + s)].map((Key) =>
        this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key })).catch((error) => {
          if (!isNotFound(error)) throw error;
        }),
      ),
    );
  }

  async *listKeys(prefix?: string): AsyncIterable<string> {
    let ContinuationToken: string | undefined;
    do {
      const page = await this.client.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken, MaxKeys: this.listPageSize }),
      );
      for (const o of page.Contents ?? []) if (o.Key !== undefined) yield o.Key;
      ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (ContinuationToken);
  }

  /** Unfinished multipart uploads (key, id), optionally under prefix: what delete() aborts. */
  async listUnfinishedUploads(prefix?: string): Promise<Array<{ key: string; uploadId: string }>> {
    const out: Array<{ key: string; uploadId: string }> = [];
    let KeyMarker: string | undefined;
    let UploadIdMarker: string | undefined;
    for (;;) {
      const page = await this.client.send(
        new ListMultipartUploadsCommand({
          Bucket: this.bucket,
          Prefix: prefix,
          KeyMarker,
          UploadIdMarker,
          MaxUploads: this.listPageSize,
        }),
      );
      for (const u of page.Uploads ?? []) if (u.Key && u.UploadId) out.push({ key: u.Key, uploadId: u.UploadId });
      if (!page.IsTruncated || (page.NextKeyMarker === undefined && page.NextUploadIdMarker === undefined)) break;
      KeyMarker = page.NextKeyMarker;
      UploadIdMarker = page.NextUploadIdMarker;
    }
    return out;
  }

  async close(): Promise<void> {
    this.client.destroy();
    // @tus/s3-store builds its own client from the same settings; it exposes no close.
    (this.dataStore as unknown as { client?: { destroy(): void } } | undefined)?.client?.destroy();
  }
}
