import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { FileStore } from '@tus/file-store';
import type { DataStore } from '@tus/server';
import {
  assertKey,
  assertRange,
  ObjectNotFoundError,
  rangePastEnd,
  StorageUnavailableError,
  type LocalStoreSettings,
  type ObjectStore,
} from './types';

/** tus's FileStore keeps the upload's metadata in `<key>.json` (its "offset" stays 0: never trust it). */
const SIDECAR = '.json';

const isErrno = (error: unknown, ...codes: string[]): boolean =>
  typeof error === 'object' && error !== null && codes.includes((error as NodeJS.ErrnoException).code ?? '');

export class LocalObjectStore implements ObjectStore {
  readonly kind = 'local' as const;
  readonly directory: string;
  private dataStore: FileStore | undefined;

  constructor(settings: LocalStoreSettings) {
    this.directory = path.resolve(settings.directory);
  }

  get location(): string {
    return this.directory;
  }

  private file(key: string): string {
    assertKey(key);
    return path.join(this.directory, ...key.split('/'));
  }

  async ensureReady(): Promise<void> {
    try {
      await fsp.mkdir(this.directory, { recursive: true });
      await fsp.access(this.directory, fs.constants.R_OK | fs.constants.W_OK);
    } catch (error) {
      throw new StorageUnavailableError(
        `Object directory ${this.directory} is not usable (check INKAST_DATA_DIR, or set S3_BUCKET): ${(error as Error).message}`,
        { cause: error },
      );
    }
  }

  tusDataStore(): DataStore {
    if (!this.dataStore) {
      // FileStore creates its directory asynchronously and throws from a callback on failure
      // (an uncaught exception): create it here, where a failure is an ordinary throw.
      fs.mkdirSync(this.directory, { recursive: true });
      this.dataStore = new FileStore({ directory: this.directory });
    }
    return this.dataStore;
  }

  async size(key: string): Promise<number | undefined> {
    try {
      const st = await fsp.stat(this.file(key));
      return st.isFile() ? st.size : undefined;
    } catch (error) {
      if (isErrno(error, 'ENOENT', 'ENOTDIR')) return undefined;
      throw error;
    }
  }

  async readRange(key: string, start: number, endExclusive: number): Promise<Readable> {
    assertRange(start, endExclusive);
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(this.file(key), 'r');
    } catch (error) {
      if (isErrno(error, 'ENOENT', 'ENOTDIR', 'EISDIR')) throw new ObjectNotFoundError(key);
      throw error;
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw new ObjectNotFoundError(key);
      if (endExclusive > st.size) throw rangePastEnd(key, endExclusive, st.size);
      if (start === endExclusive) {
        await fh.close();
        return Readable.from([]);
      }
      // The stream owns the handle from here (autoClose: closed on end, error or destroy).
      // 1 MiB reads: the decoder runs at ~0.6 GB/s on 64 KiB pieces and ~1 GB/s on 1 MiB ones.
      return fh.createReadStream({ start, end: endExclusive - 1, highWaterMark: 1024 * 1024 });
    } catch (error) {
      await fh.close().catch(() => {});
      throw error;
    }
  }

  async delete(key: string): Promise<void> {
    const file = this.file(key);
    await Promise.all([fsp.rm(file, { force: true }), fsp.rm(file + SIDECAR, { force: true })]);
    // Keys with folders ("a/b"): remove the folders the upload left empty, never the root.
    for (let dir = path.dirname(file); dir.startsWith(this.directory + path.sep); dir = path.dirname(dir)) {
      try {
        await fsp.rmdir(dir);
      } catch {
        break; // not empty (or gone): stop climbing
      }
    }
  }

  async *listKeys(prefix?: string): AsyncIterable<string> {
    const walk = async function* (dir: string, rel: string): AsyncGenerator<string> {
      let entries: fs.Dirent[];
      try {
        entries = await fsp.readdir(dir, { withFileTypes: true });
      } catch (error) {
        if (isErrno(error, 'ENOENT')) return;
        throw error;
      }
      for (const e of entries) {
        const key = rel ? `${rel}/${e.name}` : e.name;
        if (e.isDirectory()) yield* walk(path.join(dir, e.name), key);
        else if (e.isFile()) yield key;
      }
    };
    for await (const key of walk(this.directory, '')) {
      if (prefix === undefined || key.startsWith(prefix)) yield key;
    }
  }

  async close(): Promise<void> {}
}
