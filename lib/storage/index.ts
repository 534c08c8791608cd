/**
 * lib/storage: the object store behind tus and downloads, S3 (when S3_BUCKET is set) or
 * `<dataDir>/objects`. Objects hold ciphertext only. See docs/CONTRACTS.md.
 */
import path from 'node:path';
import { config, type Config } from '@/lib/config';
import { LocalObjectStore } from './local';
import { S3ObjectStore } from './s3';
import type { ObjectStore, ObjectStoreSettings } from './types';

export {
  ObjectNotFoundError,
  StorageUnavailableError,
  type LocalStoreSettings,
  type ObjectStore,
  type ObjectStoreSettings,
  type S3StoreSettings,
} from './types';
export { LocalObjectStore } from './local';
export { S3ObjectStore, s3ClientConfig } from './s3';

/** A new store from explicit settings (tests, tools). Does no I/O: call ensureReady(). */
export function createObjectStore(settings: ObjectStoreSettings): ObjectStore {
  return settings.kind === 's3' ? new S3ObjectStore(settings) : new LocalObjectStore(settings);
}

/** The settings the process's configuration selects: S3 when S3_BUCKET is set, else `<dataDir>/objects`. */
export function objectStoreSettings(c: Config = config()): ObjectStoreSettings {
  return c.s3 ? { kind: 's3', ...c.s3 } : { kind: 'local', directory: path.join(c.dataDir, 'objects') };
}

// Next evaluates a module twice in one process (instrumentation, route handlers): keep the one
// store, with its tus DataStore and S3 connections, on globalThis.
const g = globalThis as typeof globalThis & { __inkastObjectStore?: ObjectStore };

/** The process's object store, built from config() on first use. */
export function objectStore(): ObjectStore {
  g.__inkastObjectStore ??= createObjectStore(objectStoreSettings());
  return g.__inkastObjectStore;
}
