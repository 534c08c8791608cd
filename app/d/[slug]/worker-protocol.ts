/** The messages between the filedrop page and its encryption worker (encrypt.worker.ts). */
import type { FileEncryption } from '@/lib/crypto/encoder';
import type { Manifest } from '@/lib/crypto/manifest';

export interface ChunkTag {
  index: number;
  tag: Uint8Array;
}

/** Operation name → [arguments, result]. */
export interface WorkerOps {
  /** A new encryption (session key, salt, PKESK) for a file, held open in the worker. */
  create: [
    { fileId: string; file: File; name: string; publicKeys: string[] },
    { encryption: FileEncryption; totalLength: number },
  ];
  /** Reopens a stored encryption over a re-picked file. */
  open: [{ fileId: string; file: File; encryption: FileEncryption }, { totalLength: number }];
  /** Ciphertext bytes [start, end) and the tags of the chunks computed for them. */
  range: [{ fileId: string; start: number; end: number }, { bytes: ArrayBuffer; tags: ChunkTag[] }];
  /**
   * Whether the file still encrypts to what the server holds up to `offset`: recomputes the chunks
   * around the offset and compares their tags with the stored ones.
   */
  verify: [{ fileId: string; offset: number; tags: Map<number, Uint8Array> }, { same: boolean }];
  sha256: [{ file: File }, { hex: string }];
  close: [{ fileId: string }, null];
  manifest: [{ manifest: Manifest; publicKeys: string[] }, { bytes: ArrayBuffer }];
}

export type WorkerOp = keyof WorkerOps;

export interface WorkerRequest<O extends WorkerOp = WorkerOp> {
  id: number;
  op: O;
  args: WorkerOps[O][0];
}

/** `kind` lets the page tell an unreadable file (no retry helps) from an encryption failure. */
export type WorkerReply =
  | { id: number; ok: true; result: unknown }
  | { id: number; ok: false; kind: 'fileRead' | 'crypto'; message: string };
