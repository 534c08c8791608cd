import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { config } from '@/lib/config';
import { unwrapPrivateKey } from '@/lib/crypto/keys';

export interface MasterKey {
  /** Names the key without revealing it; stored beside everything wrapped with it. */
  id: string;
  key: Buffer;
}

export function masterKeyFrom(key: Buffer): MasterKey {
  return { id: crypto.createHash('sha256').update('inkast master key id').update(key).digest('hex').slice(0, 16), key };
}

/**
 * Loads the key file, creating it with mode 0600 on first start. The embedded default only:
 * production passes INKAST_MASTER_KEY and keeps it apart from the database backups.
 */
export function loadOrCreateKeyFile(file: string): Buffer {
  try {
    const key = Buffer.from(fs.readFileSync(file, 'utf8').trim(), 'base64');
    if (key.length !== 32) throw new Error(`${file} does not hold a 32-byte base64 key`);
    return key;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const key = crypto.randomBytes(32);
  // 'wx' so two processes starting at once cannot both create (and one overwrite) the key.
  try {
    fs.writeFileSync(file, key.toString('base64') + '\n', { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return loadOrCreateKeyFile(file);
    throw err;
  }
  return key;
}

const g = globalThis as typeof globalThis & { __inkastMasterKey?: MasterKey; __inkastPreviousMasterKey?: MasterKey | null };

/** The instance master key: INKAST_MASTER_KEY, or `<dataDir>/master.key`. */
export function masterKey(): MasterKey {
  if (!g.__inkastMasterKey) {
    const c = config();
    g.__inkastMasterKey = masterKeyFrom(c.masterKey ?? loadOrCreateKeyFile(path.join(c.dataDir, 'master.key')));
  }
  return g.__inkastMasterKey;
}

/**
 * INKAST_MASTER_KEY_PREVIOUS: during a rotation without downtime, the key being replaced. Every
 * process then unwraps under either key while `inkast master-key rotate` re-wraps the rows.
 */
export function previousMasterKey(): MasterKey | undefined {
  if (g.__inkastPreviousMasterKey === undefined) {
    const previous = config().masterKeyPrevious;
    g.__inkastPreviousMasterKey = previous ? masterKeyFrom(previous) : null;
  }
  return g.__inkastPreviousMasterKey ?? undefined;
}

/** The master key with this id: the current one or, during a rotation, the previous one. */
export function masterKeyById(id: string): MasterKey | undefined {
  const current = masterKey();
  if (id === current.id) return current;
  const previous = previousMasterKey();
  return previous?.id === id ? previous : undefined;
}

export class UnknownMasterKeyError extends Error {
  constructor(readonly masterKeyId: string) {
    super(`A mailbox key is wrapped under master key ${masterKeyId}, which this process does not have (INKAST_MASTER_KEY, INKAST_MASTER_KEY_PREVIOUS)`);
  }
}

/** A mailbox private key (armored), unwrapped with whichever configured master key wrapped it. */
export function unwrapMailboxKey(wrapped: Uint8Array, masterKeyId: string): string {
  const mk = masterKeyById(masterKeyId);
  if (!mk) throw new UnknownMasterKeyError(masterKeyId);
  return unwrapPrivateKey(mk.key, mk.id, Buffer.from(wrapped));
}
