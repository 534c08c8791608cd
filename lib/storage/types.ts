import type { Readable } from 'node:stream';
import type { DataStore } from '@tus/server';

/**
 * Where uploaded objects (ciphertext only) live: S3 or a local directory. Keys are tus upload
 * ids. Each backend also keeps tus's own sidecars beside an object: `<key>.json` locally,
 * `<key>.info` and, while an upload is unfinished, `<key>.part` (plus an open multipart upload) on S3.
 */
export interface ObjectStore {
  readonly kind: 'local' | 's3';
  /** For logs: the directory, or `s3://bucket` and its endpoint. Holds no secret. */
  readonly location: string;
  /**
   * Checks the store can be used (creates the directory or the bucket when missing).
   * Throws StorageUnavailableError naming the settings to check.
   */
  ensureReady(): Promise<void>;
  /** The @tus DataStore writing into this store (one instance per ObjectStore). */
  tusDataStore(): DataStore;
  /**
   * Bytes stored under key, or undefined when there is no such object. On S3 an object exists
   * once its upload is complete; locally the data file grows while the upload runs.
   */
  size(key: string): Promise<number | undefined>;
  /**
   * Bytes [start, endExclusive) of the object. Throws ObjectNotFoundError when it does not exist
   * and RangeError when the range is malformed or ends past the object's size.
   */
  readRange(key: string, start: number, endExclusive: number): Promise<Readable>;
  /**
   * Removes the object and everything tus keeps for it: sidecars, the unfinished `.part`,
   * unfinished multipart uploads. Idempotent: deleting a missing key is not an error.
   */
  delete(key: string): Promise<void>;
  /**
   * Every stored key (sorted on S3, in directory order locally), sidecars included
   * (`.json`, `.info`, `.part`), optionally only those starting with prefix.
   */
  listKeys(prefix?: string): AsyncIterable<string>;
  /** Releases connections (tests; the process-wide store lives as long as the process). */
  close(): Promise<void>;
}

export interface LocalStoreSettings {
  kind: 'local';
  /** The objects directory (`<dataDir>/objects` in the embedded setup). */
  directory: string;
}

export interface S3StoreSettings {
  kind: 's3';
  /** Undefined means AWS's own endpoint for the region. */
  endpoint?: string | undefined;
  bucket: string;
  region: string;
  /** Both undefined: the AWS SDK's default credential chain. */
  accessKeyId?: string | undefined;
  secretAccessKey?: string | undefined;
  /** Default true (Ceph, MinIO and most S3-compatible servers want path-style URLs). */
  forcePathStyle?: boolean;
  /**
   * requestChecksumCalculation / responseChecksumValidation. Default WHEN_REQUIRED: with
   * WHEN_SUPPORTED, SDK ≥ 3.729 sends stream bodies aws-chunked with a trailing checksum, which
   * Ceph 16 RGW (and other S3-compatible stores) answer with 411 MissingContentLength.
   */
  checksum?: 'WHEN_REQUIRED' | 'WHEN_SUPPORTED';
}

export type ObjectStoreSettings = LocalStoreSettings | S3StoreSettings;

/** readRange on a key that holds no object. */
export class ObjectNotFoundError extends Error {
  readonly key: string;
  constructor(key: string) {
    super(`No stored object under key "${key}"`);
    this.name = 'ObjectNotFoundError';
    this.key = key;
  }
}

/** The store cannot be reached or used; the message names the settings to check. */
export class StorageUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StorageUnavailableError';
  }
}

const KEY_SEGMENT = /^[A-Za-z0-9_\-][A-Za-z0-9._\-]*$/;

/** Keys are tus ids: `/`-separated segments of [A-Za-z0-9._-], none empty, none starting with a dot. */
export function assertKey(key: string): void {
  if (
    typeof key !== 'string' ||
    key.length === 0 ||
    key.length > 512 ||
    !key.split('/').every((segment) => KEY_SEGMENT.test(segment))
  ) {
    throw new TypeError(`Invalid object key: ${JSON.stringify(key)}`);
  }
}

/** Throws RangeError unless 0 <= start <= endExclusive, both safe integers. */
export function assertRange(start: number, endExclusive: number): void {
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(endExclusive) || start < 0 || endExclusive < start) {
    throw new RangeError(`Invalid byte range [${start}, ${endExclusive})`);
  }
}

export function rangePastEnd(key: string, endExclusive: number, size: number): RangeError {
  return new RangeError(`Byte range ends at ${endExclusive}, past the end of "${key}" (${size} bytes)`);
}
