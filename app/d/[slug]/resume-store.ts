/**
 * What this browser keeps so an encrypted upload can resume after a reload (FORMAT.md, "What the
 * browser keeps to resume"). Only IndexedDB of this browser holds it, never the server: the
 * subject, the message and the file names are health data. Everything of a delivery is deleted
 * once it is submitted or cancelled. The message key is a non-extractable CryptoKey.
 */
import type { EncryptionHeader } from '@/lib/crypto/encoder';

export interface DeliveryRecord {
  deliveryId: string;
  slug: string;
  senderToken: string;
  reference: string;
  uploadExpiresAt: string;
  publicKeys: string[];
  senderEmail: string;
  subject: string;
  message: string;
  /** The files in the order the sender chose them (the manifest keeps that order). */
  fileIds: string[];
}

export interface FileRecord {
  fileId: string;
  deliveryId: string;
  name: string;
  type: string;
  size: number;
  lastModified: number;
  /** Absent until the file's encryption exists; replaced when a resume check fails. */
  encryption?: {
    header: EncryptionHeader;
    messageKey: CryptoKey;
    iv: Uint8Array;
    totalLength: number;
    /** The tag of every chunk produced so far, written before its ciphertext is handed to tus. */
    tags: Map<number, Uint8Array>;
    uploadUrl?: string;
    uploaded?: boolean;
  };
  /** Hex SHA-256 of the plaintext, once computed. */
  sha256?: string;
}

const DB_NAME = 'inkast-filedrop';
const DELIVERIES = 'deliveries';
const FILES = 'files';

function request<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function done(tx: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error ?? new Error('IndexedDB transaction aborted'));
  });
}

export class ResumeStore {
  private constructor(private readonly db: IDBDatabase) {}

  static async open(): Promise<ResumeStore> {
    const req = indexedDB.open(DB_NAME, 1);
    req.onupgradeneeded = () => {
      const db = req.result;
      db.createObjectStore(DELIVERIES, { keyPath: 'deliveryId' }).createIndex('slug', 'slug');
      db.createObjectStore(FILES, { keyPath: 'fileId' }).createIndex('deliveryId', 'deliveryId');
    };
    return new ResumeStore(await request(req));
  }

  async deliveriesFor(slug: string): Promise<DeliveryRecord[]> {
    const tx = this.db.transaction(DELIVERIES, 'readonly');
    return request(tx.objectStore(DELIVERIES).index('slug').getAll(slug) as IDBRequest<DeliveryRecord[]>);
  }

  async filesOf(deliveryId: string): Promise<FileRecord[]> {
    const tx = this.db.transaction(FILES, 'readonly');
    return request(tx.objectStore(FILES).index('deliveryId').getAll(deliveryId) as IDBRequest<FileRecord[]>);
  }

  /** Writes a delivery and its files in one transaction, so a reload never sees half of it. */
  async putDelivery(delivery: DeliveryRecord, files: FileRecord[]): Promise<void> {
    const tx = this.db.transaction([DELIVERIES, FILES], 'readwrite');
    tx.objectStore(DELIVERIES).put(delivery);
    for (const f of files) tx.objectStore(FILES).put(f);
    await done(tx);
  }

  async putFile(file: FileRecord): Promise<void> {
    const tx = this.db.transaction(FILES, 'readwrite');
    tx.objectStore(FILES).put(file);
    await done(tx);
  }

  /** Read-modify-write of one file record inside one transaction. */
  async updateFile(fileId: string, change: (file: FileRecord) => void): Promise<void> {
    const tx = this.db.transaction(FILES, 'readwrite');
    const files = tx.objectStore(FILES);
    const file = (await request(files.get(fileId))) as FileRecord | undefined;
    if (file) {
      change(file);
      files.put(file);
    }
    await done(tx);
  }

  async removeFile(deliveryId: string, fileId: string): Promise<void> {
    const tx = this.db.transaction([DELIVERIES, FILES], 'readwrite');
    tx.objectStore(FILES).delete(fileId);
    const deliveries = tx.objectStore(DELIVERIES);
    const delivery = (await request(deliveries.get(deliveryId))) as DeliveryRecord | undefined;
    if (delivery) deliveries.put({ ...delivery, fileIds: delivery.fileIds.filter((id) => id !== fileId) });
    await done(tx);
  }

  /** Forgets a delivery entirely: keys, tags, names, subject and message. */
  async removeDelivery(deliveryId: string): Promise<void> {
    const tx = this.db.transaction([DELIVERIES, FILES], 'readwrite');
    tx.objectStore(DELIVERIES).delete(deliveryId);
    const files = tx.objectStore(FILES);
    for (const key of await request(files.index('deliveryId').getAllKeys(deliveryId))) files.delete(key);
    await done(tx);
  }
}
