/**
 * A Node sender: the same encoder and tus-js-client as the filedrop page, for integrations,
 * tests and benchmarks. Files are encrypted range by range as tus asks for them.
 */
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import { Readable } from 'node:stream';
import * as tus from 'tus-js-client';
import { FileEncoder, newFileEncryption } from '@/lib/crypto/encoder';
import { encryptManifest, type Manifest } from '@/lib/crypto/manifest';
import type { CreatedDelivery, DeliveryStatus } from '@/lib/deliveries';
import { chunkPacer, FIRST_CHUNK_BYTES, MAX_STREAMED_CHUNK_BYTES } from './chunks';
import { SENDER_TOKEN_HEADER, TUS_PATH } from './index';

export interface FileSource {
  name: string;
  type: string;
  size: number;
  read(start: number, end: number): Promise<Uint8Array>;
  /** Fills target with the bytes from start on (throws if the file is shorter): no allocation. */
  readInto?(target: Uint8Array, start: number): Promise<void>;
}

export function bufferSource(name: string, data: Uint8Array, type = 'application/octet-stream'): FileSource {
  return { name, type, size: data.byteLength, read: async (s, e) => data.subarray(s, e) };
}

/** A file on disk, read where the encoder asks; close() when its upload is over. */
export async function pathSource(path: string, name: string, type = 'application/octet-stream'): Promise<FileSource & { close(): Promise<void> }> {
  const handle = await fs.open(path, 'r');
  const { size } = await handle.stat().catch(async (err: unknown) => {
    await handle.close();
    throw err;
  });
  const readInto = async (target: Uint8Array, start: number) => {
    for (let off = 0; off < target.length; ) {
      const { bytesRead } = await handle.read(target, off, target.length - off, start + off);
      if (bytesRead === 0) throw new Error(`${path} ended early`);
      off += bytesRead;
    }
  };
  return {
    name,
    type,
    size,
    async read(start, end) {
      const buf = Buffer.allocUnsafe(end - start);
      await readInto(buf, start);
      return buf;
    },
    readInto,
    close: () => handle.close(),
  };
}

export class SenderApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

async function call<T>(url: string, init: RequestInit & { token?: string } = {}): Promise<T> {
  const headers = new Headers(init.headers);
  if (init.token) headers.set(SENDER_TOKEN_HEADER, init.token);
  if (init.body) headers.set('content-type', 'application/json');
  const res = await fetch(url, { ...init, headers });
  const body = (await res.json().catch(() => ({}))) as { error?: string; message?: string };
  if (!res.ok) throw new SenderApiError(res.status, body.error ?? 'http', body.message ?? res.statusText);
  return body as T;
}

export function openDelivery(
  baseUrl: string,
  input: { slug: string; senderEmail: string; locale?: 'sv' | 'en' },
): Promise<CreatedDelivery> {
  return call(`${baseUrl}/api/deliveries`, { method: 'POST', body: JSON.stringify(input) });
}

/** One file being sent: its encoder (keys, salt, PKESK fixed), and where tus keeps it. */
export interface PreparedFile {
  source: FileSource;
  encoder: FileEncoder;
  uploadUrl?: string;
}

export async function prepareFile(delivery: CreatedDelivery, source: FileSource): Promise<PreparedFile> {
  const { header, messageKey, iv } = await newFileEncryption({
    publicKeys: delivery.publicKeys,
    name: source.name,
    fileSize: source.size,
  });
  const encoder = new FileEncoder({
    header,
    messageKey,
    iv,
    readPlain: (s, e) => source.read(s, e),
    readPlainInto: source.readInto && ((target, s) => source.readInto!(target, s)),
  });
  return { source, encoder };
}

export interface UploadOptions {
  /** Bytes per PATCH; by default it adapts to the link (lib/uploads/chunks). */
  chunkSize?: number;
  /** Bytes handed to the request so far: up to one 4 MiB AEAD chunk ahead of the socket. */
  onProgress?: (sent: number, total: number) => void;
  /** Called after each PATCH the server accepted, with its offset. */
  onOffset?: (offset: number) => void;
  retryDelays?: number[];
}

/** A tus upload of the file's ciphertext; not started. Resumes from `file.uploadUrl` when set. */
export function tusUpload(
  baseUrl: string,
  delivery: CreatedDelivery,
  file: PreparedFile,
  opts: UploadOptions,
  done: (err?: Error) => void,
): tus.Upload {
  const encoder = file.encoder;
  const pacer = opts.chunkSize === undefined ? chunkPacer(MAX_STREAMED_CHUNK_BYTES) : undefined;
  const upload = new tus.Upload(Buffer.alloc(0), {
    endpoint: `${baseUrl}${TUS_PATH}`,
    uploadUrl: file.uploadUrl ? new URL(file.uploadUrl, baseUrl).toString() : undefined,
    uploadSize: encoder.totalLength,
    chunkSize: opts.chunkSize ?? FIRST_CHUNK_BYTES,
    metadata: { deliveryId: delivery.deliveryId },
    headers: { [SENDER_TOKEN_HEADER]: delivery.senderToken },
    retryDelays: opts.retryDelays ?? [0, 500, 1000, 3000, 5000],
    onShouldRetry: (err) => {
      const status = err.originalResponse?.getStatus() ?? 0;
      return status === 0 || status === 408 || status === 409 || status === 423 || status === 429 || status >= 500;
    },
    fileReader: {
      async openFile() {
        return {
          size: encoder.totalLength,
          async slice(start: number, end: number) {
            const stop = Math.min(end, encoder.totalLength);
            return { value: ciphertextStream(encoder, start, stop), done: stop >= encoder.totalLength };
          },
          close() {},
        };
      },
    } as unknown as tus.UploadOptions['fileReader'],
    onUploadUrlAvailable: () => {
      file.uploadUrl = upload.url ?? undefined;
    },
    onProgress: opts.onProgress,
    onChunkComplete: (size, accepted) => {
      // tus reads chunkSize for the next PATCH after this callback.
      if (pacer) {
        pacer.completed(size);
        upload.options.chunkSize = pacer.next();
      }
      opts.onOffset?.(accepted);
    },
    onSuccess: () => done(),
    onError: (err) => done(err),
  });
  return upload;
}

/** Encrypted bytes ahead of the socket: enough that the link never waits for the encoder. */
const ENCRYPT_AHEAD_BYTES = 16 * 1024 * 1024;

/**
 * Ciphertext [start, stop) as a stream that encrypts as the request body drains, one AEAD chunk
 * at a time: the PATCH size costs no memory, and no range is assembled and copied. tus-js-client
 * in Node pipes a Readable body and sends its `size` as Content-Length.
 */
function ciphertextStream(encoder: FileEncoder, start: number, stop: number): Readable & { size: number } {
  async function* nonEmpty() {
    for await (const bytes of encoder.pieces(start, stop)) if (bytes.length) yield Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  return Object.assign(Readable.from(nonEmpty(), { objectMode: false, highWaterMark: ENCRYPT_AHEAD_BYTES }), { size: stop - start });
}

/** Uploads one file to the end; resolves with its upload id. */
export function uploadFile(baseUrl: string, delivery: CreatedDelivery, file: PreparedFile, opts: UploadOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const upload = tusUpload(baseUrl, delivery, file, opts, (err) => (err ? reject(err) : resolve(uploadIdOf(file))));
    upload.start();
  });
}

export function uploadIdOf(file: PreparedFile): string {
  if (!file.uploadUrl) throw new Error('the upload has no URL yet');
  return new URL(file.uploadUrl, 'http://x').pathname.split('/').pop()!;
}

export async function sha256Of(source: FileSource): Promise<string> {
  const hash = crypto.createHash('sha256');
  const step = 8 * 1024 * 1024;
  for (let at = 0; at < source.size; at += step) hash.update(await source.read(at, Math.min(source.size, at + step)));
  return hash.digest('hex');
}

export async function submit(
  baseUrl: string,
  delivery: CreatedDelivery,
  content: { subject: string; message: string },
  files: PreparedFile[],
): Promise<void> {
  const manifest: Manifest = {
    version: 1,
    subject: content.subject,
    message: content.message,
    files: await Promise.all(
      files.map(async (f) => ({
        uploadId: uploadIdOf(f),
        name: f.source.name,
        type: f.source.type,
        size: f.source.size,
        sha256: await sha256Of(f.source),
      })),
    ),
  };
  const bytes = await encryptManifest(manifest, delivery.publicKeys);
  await call(`${baseUrl}/api/deliveries/${delivery.deliveryId}/submit`, {
    method: 'POST',
    token: delivery.senderToken,
    body: JSON.stringify({ manifest: Buffer.from(bytes).toString('base64') }),
  });
}

export function deliveryStatus(baseUrl: string, delivery: CreatedDelivery): Promise<DeliveryStatus> {
  return call(`${baseUrl}/api/deliveries/${delivery.deliveryId}`, { token: delivery.senderToken });
}

/** Polls until the delivery is delivered or rejected. */
export async function waitForFinalState(baseUrl: string, delivery: CreatedDelivery, timeoutMs = 60_000): Promise<DeliveryStatus> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const status = await deliveryStatus(baseUrl, delivery);
    if (status.state === 'delivered' || status.state === 'rejected') return status;
    if (Date.now() > until) throw new Error(`delivery still ${status.state} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The whole journey: open, encrypt and upload every file, submit the manifest. */
export async function sendDelivery(
  baseUrl: string,
  input: { slug: string; senderEmail: string; subject: string; message: string; files: FileSource[]; locale?: 'sv' | 'en' },
  opts: UploadOptions = {},
): Promise<{ delivery: CreatedDelivery; files: PreparedFile[] }> {
  const delivery = await openDelivery(baseUrl, { slug: input.slug, senderEmail: input.senderEmail, locale: input.locale });
  const files: PreparedFile[] = [];
  for (const source of input.files) {
    const file = await prepareFile(delivery, source);
    await uploadFile(baseUrl, delivery, file, opts);
    files.push(file);
  }
  await submit(baseUrl, delivery, input, files);
  return { delivery, files };
}
