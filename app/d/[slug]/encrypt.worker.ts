/**
 * The filedrop page's encryption worker: holds one FileEncoder per file and answers ciphertext
 * ranges for tus, so encryption and hashing never block the page. Also computes each file's
 * SHA-256 and encrypts the manifest (openpgp is loaded here only).
 */
import { createSHA256 } from 'hash-wasm';
import { FileEncoder, newFileEncryption, type FileEncryption } from '@/lib/crypto/encoder';
import { encryptManifest } from '@/lib/crypto/manifest';
import type { ChunkTag, WorkerOp, WorkerOps, WorkerReply, WorkerRequest } from './worker-protocol';

const scope = self as unknown as DedicatedWorkerGlobalScope;

/** Reading the picked file failed (moved, changed, permission gone): retrying will not help. */
class FileReadError extends Error {}

interface OpenFile {
  encoder: FileEncoder;
  /** Tags produced since the last range answer; the page stores them before sending bytes. */
  newTags: ChunkTag[];
}

const files = new Map<string, OpenFile>();

async function readFile(file: File, start: number, end: number): Promise<Uint8Array> {
  try {
    return new Uint8Array(await file.slice(start, end).arrayBuffer());
  } catch (err) {
    throw new FileReadError(err instanceof Error ? err.message : String(err));
  }
}

function openEncoder(fileId: string, file: File, encryption: FileEncryption): FileEncoder {
  const open: OpenFile = {
    encoder: new FileEncoder({
      ...encryption,
      readPlain: (start, end) => readFile(file, start, end),
      onChunkTag: (index, tag) => open.newTags.push({ index, tag: tag.slice() }),
    }),
    newTags: [],
  };
  files.set(fileId, open);
  return open.encoder;
}

function opened(fileId: string): OpenFile {
  const open = files.get(fileId);
  if (!open) throw new Error(`file ${fileId} is not open in the worker`);
  return open;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

type Handler<O extends WorkerOp> = (args: WorkerOps[O][0]) => Promise<[WorkerOps[O][1], Transferable[]?]>;

const handlers: { [O in WorkerOp]: Handler<O> } = {
  async create({ fileId, file, name, publicKeys }) {
    const encryption = await newFileEncryption({ publicKeys, name, fileSize: file.size });
    return [{ encryption, totalLength: openEncoder(fileId, file, encryption).totalLength }];
  },

  async open({ fileId, file, encryption }) {
    return [{ totalLength: openEncoder(fileId, file, encryption).totalLength }];
  },

  async range({ fileId, start, end }) {
    const open = opened(fileId);
    const bytes = await open.encoder.range(start, end);
    const tags = open.newTags.splice(0);
    const buffer =
      bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength
        ? (bytes.buffer as ArrayBuffer)
        : (bytes.slice().buffer as ArrayBuffer);
    return [{ bytes: buffer, tags }, [buffer]];
  },

  async verify({ fileId, offset, tags }) {
    const { encoder } = opened(fileId);
    // The chunk holding the server's last byte must have left this browser, so its tag was stored
    // before it did: if it is missing, nothing proves the file is the same one.
    if (offset > 0) {
      const last = encoder.chunkIndexAt(offset - 1);
      const stored = tags.get(last);
      if (encoder.isDataChunk(last) && (!stored || !sameBytes(await encoder.chunkTag(last), stored))) {
        return [{ same: false }];
      }
    }
    // The chunk that continues at the offset may have been produced (and partly sent) before:
    // re-encrypting different plaintext under its nonce is the one thing that must never happen.
    if (offset < encoder.totalLength) {
      const next = encoder.chunkIndexAt(offset);
      const stored = tags.get(next);
      if (stored && !sameBytes(await encoder.chunkTag(next), stored)) return [{ same: false }];
    }
    return [{ same: true }];
  },

  async sha256({ file }) {
    const hash = await createSHA256();
    hash.init();
    const step = 8 * 1024 * 1024;
    for (let at = 0; at < file.size; at += step) hash.update(await readFile(file, at, Math.min(file.size, at + step)));
    return [{ hex: hash.digest('hex') }];
  },

  async close({ fileId }) {
    files.delete(fileId);
    return [null];
  },

  async manifest({ manifest, publicKeys }) {
    const bytes = await encryptManifest(manifest, publicKeys);
    const buffer = bytes.slice().buffer as ArrayBuffer;
    return [{ bytes: buffer }, [buffer]];
  },
};

scope.onmessage = async (event: MessageEvent<WorkerRequest>) => {
  const { id, op, args } = event.data;
  let reply: WorkerReply;
  let transfer: Transferable[] = [];
  try {
    const [result, toTransfer] = await (handlers[op] as Handler<typeof op>)(args);
    reply = { id, ok: true, result };
    transfer = toTransfer ?? [];
  } catch (err) {
    reply = {
      id,
      ok: false,
      kind: err instanceof FileReadError ? 'fileRead' : 'crypto',
      message: err instanceof Error ? err.message : String(err),
    };
  }
  scope.postMessage(reply, transfer);
};
