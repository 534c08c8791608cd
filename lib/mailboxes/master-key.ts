import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { config } from '@/lib/config';

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

const g = globalThis as typeof globalThis & { __inkastMasterKey?: MasterKey };

/** The instance master key: INKAST_MASTER_KEY, or `<dataDir>/master.key`. */
export function masterKey(): MasterKey {
  if (!g.__inkastMasterKey) {
    const c = config();
    g.__inkastMasterKey = masterKeyFrom(c.masterKey ?? loadOrCreateKeyFile(path.join(c.dataDir, 'master.key')));
  }
  return g.__inkastMasterKey;
}
