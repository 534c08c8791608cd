/**
 * One delivery being sent from this browser: creates it, encrypts and uploads each file with tus
 * (resumable, also across reloads), hashes each file, then hands in the encrypted manifest and
 * follows the delivery until the server has verified it. The UI subscribes to its snapshots.
 */
import * as tus from 'tus-js-client';
import type { Manifest } from '@/lib/crypto/manifest';
import type { Locale } from '@/lib/i18n';
import { chunkPacer, FIRST_CHUNK_BYTES } from '@/lib/uploads/chunks';
import {
  ApiError,
  cancelDelivery,
  createDelivery,
  deliveryStatus,
  finalStates,
  retryAfterOf,
  SENDER_TOKEN_HEADER,
  submitDelivery,
  terminateUpload,
  TUS_ENDPOINT,
  uploadIdOf,
  uploadOffset,
  type DeliveryState,
} from './api';
import type { DeliveryRecord, FileRecord, ResumeStore } from './resume-store';
import { encryptedFileReader } from './tus-reader';
import { WorkerError, type EncryptWorker } from './worker-client';
import type { ChunkTag } from './worker-protocol';

const RETRY_DELAYS = [0, 1000, 3000, 5000, 10_000, 20_000, 30_000, 60_000];
/** Snapshots during an upload are throttled to this: progress events come far more often. */
const EMIT_INTERVAL_MS = 250;
const SPEED_WINDOW_MS = 8000;

export type FileStatus = 'waiting' | 'preparing' | 'uploading' | 'paused' | 'done' | 'needsFile' | 'failed';

/** What went wrong, for the UI to put into words. */
export type Problem =
  | { kind: 'http'; status: number; code: string; retryAfter?: number }
  | { kind: 'network' }
  | { kind: 'fileRead' }
  | { kind: 'worker' };

export interface FileView {
  fileId: string;
  name: string;
  size: number;
  status: FileStatus;
  /** Ciphertext bytes the server has, of `total` (the fraction is what the UI shows). */
  sent: number;
  total: number;
  sha256?: string;
  problem?: Problem;
  /** The server keeps a finished upload until the hand-in (it refuses to delete it): no removing then. */
  removable: boolean;
}

export type Phase = 'uploading' | 'submitting' | 'submitted' | 'cancelled';

export interface DeliveryView {
  deliveryId: string;
  reference: string;
  senderEmail: string;
  subject: string;
  uploadExpiresAt: string;
  phase: Phase;
  files: FileView[];
  /** Ciphertext bytes per second over the last few seconds, when there is a fair estimate. */
  speed: number | null;
  /** The server's view once handed in. */
  state?: DeliveryState;
  rejectReason?: string | null;
  pollFailed?: boolean;
  /** Handing in failed; `retrySubmit` tries again. */
  submitProblem?: Problem;
}

export type DeliveryEvent = { kind: 'fileDone' | 'paused' | 'resumed' | 'failed' | 'restarted'; name: string };

interface Entry {
  record: FileRecord;
  file: File | null;
  status: FileStatus;
  sent: number;
  upload: tus.Upload | null;
  hashing: boolean;
  problem?: Problem;
}

export function problemOf(err: unknown): Problem {
  if (err instanceof ApiError) {
    return err.status === 0 ? { kind: 'network' } : { kind: 'http', status: err.status, code: err.code, retryAfter: err.retryAfter };
  }
  if (err instanceof WorkerError) return { kind: err.kind === 'fileRead' ? 'fileRead' : 'worker' };
  if (err instanceof tus.DetailedError) {
    if (err.causingError instanceof WorkerError) return problemOf(err.causingError);
    const status = err.originalResponse?.getStatus() ?? 0;
    const retryAfter = retryAfterOf(err.originalResponse?.getHeader('Retry-After'));
    return status ? { kind: 'http', status, code: 'tus', retryAfter } : { kind: 'network' };
  }
  return { kind: 'worker' };
}

/**
 * tus-js-client's own rule skips 408 (`next start` ends requests at 300 s) and 429. A 429 is
 * retried only when the wait is short: a spent upload allowance is shown to the sender instead.
 */
function shouldRetry(err: tus.DetailedError): boolean {
  if (err.causingError instanceof WorkerError) return false;
  const status = err.originalResponse?.getStatus() ?? 0;
  if (status === 429) return (retryAfterOf(err.originalResponse?.getHeader('Retry-After')) ?? 0) <= 30;
  return status === 0 || status === 408 || status === 409 || status === 423 || status >= 500;
}

function toBase64(bytes: Uint8Array): string {
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

/** Holds a Web Lock for the delivery, so two tabs never drive the same one; null if another tab does. */
async function lockDelivery(deliveryId: string): Promise<(() => void) | null> {
  if (!navigator.locks) return () => {};
  return new Promise((resolve) => {
    void navigator.locks.request(`inkast-delivery:${deliveryId}`, { ifAvailable: true }, (lock) => {
      if (!lock) return resolve(null);
      return new Promise<void>((release) => resolve(release));
    });
  });
}

/** The server's offset for an upload (tus HEAD); waits out a lock left by the aborted request. */
async function serverOffset(uploadUrl: string, token: string) {
  for (const delay of [500, 1000, 2000, 4000, 8000]) {
    const head = await uploadOffset(uploadUrl, token);
    if (head.status !== 423 && head.status < 500) return head;
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
  const head = await uploadOffset(uploadUrl, token);
  if (head.status === 423 || head.status >= 500) throw new ApiError(head.status, 'tus', 'upload unavailable');
  return head;
}

export class DeliveryUpload {
  private readonly entries: Entry[];
  private readonly listeners = new Set<() => void>();
  private readonly eventListeners = new Set<(event: DeliveryEvent) => void>();
  private view!: DeliveryView;
  private phase: Phase = 'uploading';
  private state?: DeliveryState;
  private rejectReason?: string | null;
  private pollFailed = false;
  private submitProblem?: Problem;
  private samples: { at: number; bytes: number }[] = [];
  private emitTimer: ReturnType<typeof setTimeout> | null = null;
  private pollTimer: ReturnType<typeof setTimeout> | null = null;
  private disposed = false;

  private constructor(
    private readonly delivery: DeliveryRecord,
    files: { record: FileRecord; file: File | null }[],
    private readonly store: ResumeStore | null,
    private readonly worker: EncryptWorker,
    private readonly releaseLock: () => void,
  ) {
    this.entries = files.map(({ record, file }) => ({
      record,
      file,
      status: file ? 'waiting' : record.encryption?.uploaded && record.sha256 ? 'done' : 'needsFile',
      sent: record.encryption?.uploaded ? record.encryption.totalLength : 0,
      upload: null,
      hashing: false,
    }));
    this.refresh();
  }

  /** Opens a new delivery on the server and starts sending the files. */
  static async start(
    input: { slug: string; locale: Locale; senderEmail: string; subject: string; message: string; files: File[] },
    store: ResumeStore | null,
    worker: EncryptWorker,
  ): Promise<DeliveryUpload> {
    const created = await createDelivery({ slug: input.slug, senderEmail: input.senderEmail, locale: input.locale });
    const files = input.files.map((file) => ({
      file,
      record: {
        fileId: crypto.randomUUID(),
        deliveryId: created.deliveryId,
        name: file.name,
        type: file.type,
        size: file.size,
        lastModified: file.lastModified,
      } satisfies FileRecord,
    }));
    const delivery: DeliveryRecord = {
      deliveryId: created.deliveryId,
      slug: input.slug,
      senderToken: created.senderToken,
      reference: created.reference,
      uploadExpiresAt: created.uploadExpiresAt,
      publicKeys: created.publicKeys,
      senderEmail: input.senderEmail,
      subject: input.subject,
      message: input.message,
      fileIds: files.map((f) => f.record.fileId),
    };
    await store?.putDelivery(
      delivery,
      files.map((f) => f.record),
    );
    const release = (await lockDelivery(delivery.deliveryId)) ?? (() => {});
    const upload = new DeliveryUpload(delivery, files, store, worker, release);
    upload.schedule();
    return upload;
  }

  /**
   * The newest delivery to this filedrop link that this browser left unfinished and no other tab is
   * sending, restored with its files waiting to be picked again. Deliveries the server no longer
   * takes uploads for are forgotten here.
   */
  static async restore(slug: string, store: ResumeStore, worker: EncryptWorker): Promise<DeliveryUpload | null> {
    const deliveries = (await store.deliveriesFor(slug)).sort((a, b) => b.uploadExpiresAt.localeCompare(a.uploadExpiresAt));
    for (const delivery of deliveries) {
      const release = await lockDelivery(delivery.deliveryId);
      if (!release) continue;
      let state: DeliveryState | 'gone';
      try {
        state = (await deliveryStatus(delivery.deliveryId, delivery.senderToken)).state;
      } catch (err) {
        if (!(err instanceof ApiError && err.status === 404)) {
          release();
          throw err;
        }
        state = 'gone';
      }
      if (state !== 'uploading' || Date.parse(delivery.uploadExpiresAt) < Date.now()) {
        await store.removeDelivery(delivery.deliveryId);
        release();
        continue;
      }
      const records = new Map((await store.filesOf(delivery.deliveryId)).map((r) => [r.fileId, r]));
      const files = delivery.fileIds.flatMap((id) => {
        const record = records.get(id);
        return record ? [{ record, file: null }] : [];
      });
      const upload = new DeliveryUpload(delivery, files, store, worker, release);
      // Every file may have been uploaded and hashed before the reload: then only the hand-in is left.
      upload.maybeSubmit();
      return upload;
    }
    return null;
  }

  // ---- for the UI ----

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  snapshot = (): DeliveryView => this.view;

  onEvent(listener: (event: DeliveryEvent) => void): () => void {
    this.eventListeners.add(listener);
    return () => this.eventListeners.delete(listener);
  }

  /**
   * The sender picked files again after a reload: each is matched to a waiting file by name, size
   * and date. Returns the names that belong to no file of the delivery.
   */
  pick(files: File[]): string[] {
    const unmatched: string[] = [];
    for (const file of files) {
      const waiting = this.entries.filter((e) => e.status === 'needsFile');
      const entry =
        waiting.find(
          (e) => e.record.name === file.name && e.record.size === file.size && e.record.lastModified === file.lastModified,
        ) ?? waiting.find((e) => e.record.name === file.name);
      if (!entry) {
        unmatched.push(file.name);
        continue;
      }
      entry.file = file;
      entry.status = 'waiting';
      entry.problem = undefined;
      // The digest is always taken from the file as picked now.
      entry.record.sha256 = undefined;
    }
    this.schedule();
    this.refresh();
    return unmatched;
  }

  pause(fileId: string): void {
    const entry = this.entry(fileId);
    if (!entry || !['waiting', 'preparing', 'uploading'].includes(entry.status)) return;
    void entry.upload?.abort();
    entry.status = 'paused';
    this.samples = [];
    this.event('paused', entry);
    this.schedule();
    this.refresh();
  }

  resume(fileId: string): void {
    const entry = this.entry(fileId);
    if (!entry || (entry.status !== 'paused' && entry.status !== 'failed')) return;
    if (entry.status === 'paused') this.event('resumed', entry);
    entry.status = 'waiting';
    entry.problem = undefined;
    this.schedule();
    this.refresh();
  }

  /** Removes a file, finished or not, while the delivery is still open; the server deletes it. */
  async remove(fileId: string): Promise<void> {
    const entry = this.entry(fileId);
    if (!entry || this.phase !== 'uploading') return;
    const url = entry.record.encryption?.uploadUrl;
    void entry.upload?.abort();
    this.entries.splice(this.entries.indexOf(entry), 1);
    this.delivery.fileIds = this.delivery.fileIds.filter((id) => id !== fileId);
    this.refresh();
    this.schedule();
    await Promise.allSettled([
      url ? terminateUpload(url, this.delivery.senderToken) : undefined,
      this.worker.call('close', { fileId }),
      this.store?.removeFile(this.delivery.deliveryId, fileId),
    ]);
    this.maybeSubmit();
  }

  /** Gives the delivery up: the server deletes every upload, and the page what it kept locally. */
  async cancel(): Promise<void> {
    this.phase = 'cancelled';
    for (const e of this.entries) void e.upload?.abort();
    this.refresh();
    await cancelDelivery(this.delivery.deliveryId, this.delivery.senderToken).catch(() => {});
    await this.store?.removeDelivery(this.delivery.deliveryId);
    this.dispose();
  }

  retrySubmit(): void {
    this.submitProblem = undefined;
    this.refresh();
    this.maybeSubmit();
  }

  /** Stops everything this delivery runs in the page (uploads, polling, its tab lock). */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const e of this.entries) void e.upload?.abort();
    if (this.emitTimer) clearTimeout(this.emitTimer);
    if (this.pollTimer) clearTimeout(this.pollTimer);
    this.releaseLock();
  }

  /** Whether leaving the page now would interrupt sending. */
  get busy(): boolean {
    return (
      this.phase === 'submitting' ||
      (this.phase === 'uploading' && this.entries.some((e) => e.status === 'preparing' || e.status === 'uploading'))
    );
  }

  // ---- sending ----

  private entry(fileId: string): Entry | undefined {
    return this.entries.find((e) => e.record.fileId === fileId);
  }

  /** One file uploads at a time: the link is the bottleneck, and the order stays predictable. */
  private schedule(): void {
    if (this.disposed || this.phase !== 'uploading') return;
    // One digest at a time too, beside the upload: both read the disk.
    if (!this.entries.some((e) => e.hashing)) {
      const unhashed = this.entries.find((e) => e.file && !e.record.sha256 && e.status !== 'failed');
      if (unhashed) void this.hash(unhashed);
    }
    if (this.entries.some((e) => e.status === 'preparing' || e.status === 'uploading')) return;
    const next = this.entries.find((e) => e.status === 'waiting');
    if (next) void this.send(next);
  }

  private async send(entry: Entry): Promise<void> {
    if (entry.upload) {
      // Paused or failed in this page: tus asks the server for its offset and carries on.
      entry.status = 'uploading';
      this.samples = [];
      this.refresh();
      entry.upload.start();
      return;
    }
    entry.status = 'preparing';
    this.refresh();
    try {
      await this.prepare(entry);
      // Paused or removed while preparing: leave it as the sender set it.
      if (entry.status !== 'preparing' || !this.entries.includes(entry) || this.disposed) return;
      if (entry.record.encryption!.uploaded) {
        entry.status = 'done';
        this.refresh();
        this.schedule();
        this.maybeSubmit();
        return;
      }
      this.startTus(entry);
    } catch (err) {
      this.fail(entry, problemOf(err));
    }
  }

  /**
   * Makes sure the worker holds the file's encryption and that continuing cannot reuse a nonce
   * with other plaintext (FORMAT.md): a stored upload continues only when the re-picked file has
   * the same size and date and re-encrypts to the tags stored around the server's offset.
   * Otherwise the upload is discarded and the file starts over with a new key, salt and PKESK.
   */
  private async prepare(entry: Entry): Promise<void> {
    const { record } = entry;
    const file = entry.file!;
    const enc = record.encryption;
    if (!enc) return this.encryptAfresh(entry);
    // Fully uploaded before the reload, only the digest was missing: the server compares the
    // digest with what it holds, so a changed file is caught there.
    if (enc.uploaded) return;
    if (file.size === record.size && file.lastModified === record.lastModified && enc.uploadUrl) {
      const { header, messageKey, iv } = enc;
      await this.worker.call('open', { fileId: record.fileId, file, encryption: { header, messageKey, iv } });
      const head = await serverOffset(enc.uploadUrl, this.delivery.senderToken);
      if (head.status === 200 && head.length === enc.totalLength && Number.isFinite(head.offset)) {
        const { same } = await this.worker.call('verify', { fileId: record.fileId, offset: head.offset!, tags: enc.tags });
        if (same) {
          entry.sent = head.offset!;
          return;
        }
      } else if (head.status !== 404) {
        // 409/410: the delivery takes no more uploads; starting over would not help either.
        throw new ApiError(head.status, 'tus', 'upload refused');
      }
    }
    if (enc.uploadUrl) {
      await terminateUpload(enc.uploadUrl, this.delivery.senderToken);
      this.event('restarted', entry);
    }
    await this.encryptAfresh(entry);
  }

  /** A new encryption, stored before any of its ciphertext can leave the page. */
  private async encryptAfresh(entry: Entry): Promise<void> {
    const file = entry.file!;
    const { record } = entry;
    const { encryption, totalLength } = await this.worker.call('create', {
      fileId: record.fileId,
      file,
      name: record.name,
      publicKeys: this.delivery.publicKeys,
    });
    record.size = file.size;
    record.lastModified = file.lastModified;
    record.type = file.type;
    record.encryption = { ...encryption, totalLength, tags: new Map() };
    entry.sent = 0;
    await this.store?.putFile(record);
  }

  private startTus(entry: Entry): void {
    const { record } = entry;
    const enc = record.encryption!;
    this.samples = [];
    const pacer = chunkPacer();
    const upload: tus.Upload = new tus.Upload(entry.file!, {
      // tus resolves the Location it gets against the endpoint: it must be absolute.
      endpoint: new URL(TUS_ENDPOINT, window.location.href).href,
      uploadUrl: enc.uploadUrl ?? null,
      uploadSize: enc.totalLength,
      // 48 MiB first, then about a minute's worth at the measured speed (lib/uploads/chunks).
      chunkSize: FIRST_CHUNK_BYTES,
      // Only the delivery id travels in clear: never a file name or type.
      metadata: { deliveryId: this.delivery.deliveryId },
      headers: { [SENDER_TOKEN_HEADER]: this.delivery.senderToken },
      retryDelays: RETRY_DELAYS,
      onShouldRetry: shouldRetry,
      fileReader: encryptedFileReader({
        worker: this.worker,
        fileId: record.fileId,
        totalLength: enc.totalLength,
        keepTags: (tags) => this.keepTags(entry, tags),
        nextChunkSize: (): number => (upload.options.chunkSize = pacer.next()),
      }),
      // Resume state lives in IndexedDB (below), not in tus's localStorage keyed by the file name.
      fingerprint: async () => `inkast:${record.fileId}`,
      storeFingerprintForResuming: false,
      onUploadUrlAvailable: () => {
        enc.uploadUrl = upload.url ?? undefined;
        void this.store?.putFile(record);
      },
      onProgress: (sent) => {
        entry.sent = sent;
        this.progressed();
      },
      onChunkComplete: (size) => pacer.completed(size),
      onSuccess: () => this.uploaded(entry),
      onError: (err) => this.fail(entry, problemOf(err)),
    });
    entry.upload = upload;
    entry.status = 'uploading';
    this.refresh();
    upload.start();
  }

  private async keepTags(entry: Entry, tags: ChunkTag[]): Promise<void> {
    const enc = entry.record.encryption!;
    for (const { index, tag } of tags) enc.tags.set(index, tag);
    await this.store?.putFile(entry.record);
  }

  private uploaded(entry: Entry): void {
    entry.record.encryption!.uploaded = true;
    void this.store?.putFile(entry.record);
    entry.status = 'done';
    entry.sent = entry.record.encryption!.totalLength;
    entry.upload = null;
    void this.worker.call('close', { fileId: entry.record.fileId });
    this.event('fileDone', entry);
    this.refresh();
    this.schedule();
    this.maybeSubmit();
  }

  private fail(entry: Entry, problem: Problem): void {
    if (this.disposed || entry.status === 'paused' || !this.entries.includes(entry)) return;
    void entry.upload?.abort();
    if (problem.kind === 'fileRead') {
      // The browser no longer lets the page read the file (it was changed or moved): only picking
      // it again helps, and then the resume check decides whether the upload may continue.
      entry.file = null;
      entry.upload = null;
      entry.status = 'needsFile';
    } else {
      entry.status = 'failed';
    }
    entry.problem = problem;
    this.samples = [];
    this.event('failed', entry);
    this.refresh();
    this.schedule();
  }

  /** SHA-256 of the whole file, read afresh in the worker (after a reload too: it is local). */
  private async hash(entry: Entry): Promise<void> {
    const file = entry.file!;
    entry.hashing = true;
    try {
      const { hex } = await this.worker.call('sha256', { file });
      if (entry.file !== file || !this.entries.includes(entry)) return;
      entry.record.sha256 = hex;
      await this.store?.putFile(entry.record);
      this.refresh();
      this.maybeSubmit();
    } catch (err) {
      this.fail(entry, problemOf(err));
    } finally {
      entry.hashing = false;
      this.schedule();
    }
  }

  // ---- handing in and following ----

  private maybeSubmit(): void {
    if (this.disposed || this.phase !== 'uploading' || this.submitProblem || this.entries.length === 0) return;
    if (!this.entries.every((e) => e.status === 'done' && e.record.sha256)) return;
    void this.submit();
  }

  private async submit(): Promise<void> {
    this.phase = 'submitting';
    this.refresh();
    const { deliveryId, senderToken } = this.delivery;
    try {
      const manifest: Manifest = {
        version: 1,
        subject: this.delivery.subject,
        message: this.delivery.message,
        files: this.entries.map(({ record }) => ({
          uploadId: uploadIdOf(record.encryption!.uploadUrl!),
          name: record.name,
          type: record.type || 'application/octet-stream',
          size: record.size,
          sha256: record.sha256!,
        })),
      };
      const { bytes } = await this.worker.call('manifest', { manifest, publicKeys: this.delivery.publicKeys });
      try {
        this.state = (await submitDelivery(deliveryId, senderToken, toBase64(new Uint8Array(bytes)))).state;
      } catch (err) {
        // The answer to an earlier hand-in may have been lost on the way: the server knows.
        const status = await deliveryStatus(deliveryId, senderToken).catch(() => null);
        if (!status || status.state === 'uploading') throw err;
        this.state = status.state;
      }
    } catch (err) {
      this.phase = 'uploading';
      this.submitProblem = problemOf(err);
      this.refresh();
      return;
    }
    this.phase = 'submitted';
    // Handed in: nothing of it stays in this browser (FORMAT.md), and no other tab may resume it.
    await this.store?.removeDelivery(deliveryId).catch(() => {});
    this.releaseLock();
    this.refresh();
    void this.poll(1000);
  }

  /** Follows the server's verification until the delivery is delivered or rejected. */
  private async poll(delay: number): Promise<void> {
    if (this.disposed) return;
    try {
      const status = await deliveryStatus(this.delivery.deliveryId, this.delivery.senderToken);
      this.state = status.state;
      this.rejectReason = status.rejectReason;
      this.pollFailed = false;
    } catch {
      this.pollFailed = true;
    }
    this.refresh();
    if (this.state && finalStates.includes(this.state)) return;
    this.pollTimer = setTimeout(() => void this.poll(Math.min(delay * 1.5, 5000)), delay);
  }

  // ---- snapshots ----

  private event(kind: DeliveryEvent['kind'], entry: Entry): void {
    for (const listener of this.eventListeners) listener({ kind, name: entry.record.name });
  }

  private progressed(): void {
    const now = performance.now();
    this.samples.push({ at: now, bytes: this.entries.reduce((sum, e) => sum + e.sent, 0) });
    while (this.samples.length > 2 && now - this.samples[0].at > SPEED_WINDOW_MS) this.samples.shift();
    this.emitTimer ??= setTimeout(() => {
      this.emitTimer = null;
      this.refresh();
    }, EMIT_INTERVAL_MS);
  }

  private speed(): number | null {
    if (this.samples.length < 2) return null;
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    const seconds = (last.at - first.at) / 1000;
    return seconds >= 1 && last.bytes > first.bytes ? (last.bytes - first.bytes) / seconds : null;
  }

  private refresh(): void {
    this.view = {
      deliveryId: this.delivery.deliveryId,
      reference: this.delivery.reference,
      senderEmail: this.delivery.senderEmail,
      subject: this.delivery.subject,
      uploadExpiresAt: this.delivery.uploadExpiresAt,
      phase: this.phase,
      files: this.entries.map((e) => ({
        fileId: e.record.fileId,
        name: e.record.name,
        size: e.file?.size ?? e.record.size,
        status: e.status,
        sent: e.sent,
        total: e.record.encryption?.totalLength ?? 0,
        sha256: e.record.sha256,
        problem: e.problem,
        removable: this.phase === 'uploading',
      })),
      speed: this.speed(),
      state: this.state,
      rejectReason: this.rejectReason,
      pollFailed: this.pollFailed,
      submitProblem: this.submitProblem,
    };
    for (const listener of this.listeners) listener();
  }
}
