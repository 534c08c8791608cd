/**
 * Offline decryption of a stored object with an exported key (`inkast decrypt`): no database,
 * no configuration, no network — only the key file, its passphrase and the object's bytes.
 */
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import * as openpgp from 'openpgp';
import { openStoredObject, type ObjectSource } from '@/lib/crypto/decoder';

/** Bad input to an offline command (unreadable key file, wrong passphrase, unsafe name). */
export class OfflineError extends Error {
  override name = 'OfflineError';
}

const BLOCK = /-----BEGIN PGP PRIVATE KEY BLOCK-----[\s\S]*?-----END PGP PRIVATE KEY BLOCK-----/g;

/** Reads an export (one or more armored blocks) and unlocks every key with the passphrase. */
export async function readExportedKeys(armored: string, passphrase: string): Promise<openpgp.PrivateKey[]> {
  const blocks = armored.match(BLOCK) ?? [];
  if (!blocks.length) throw new OfflineError('The key file holds no armored private key');
  const keys: openpgp.PrivateKey[] = [];
  for (const armoredKey of blocks) {
    const privateKey = await openpgp.readPrivateKey({ armoredKey });
    if (privateKey.isDecrypted()) {
      keys.push(privateKey);
      continue;
    }
    try {
      keys.push(await openpgp.decryptKey({ privateKey, passphrase }));
    } catch {
      throw new OfflineError(`The passphrase does not unlock key ${privateKey.getFingerprint()}`);
    }
  }
  return keys;
}

/** A passphrase file's content: the first line, without its line ending. */
export function readPassphraseFile(file: string): string {
  const text = fs.readFileSync(file, 'utf8');
  const line = text.split(/\r?\n/)[0] ?? '';
  if (!line) throw new OfflineError(`${file} holds no passphrase on its first line`);
  return line;
}

/** An ObjectSource over a file on disk. */
export function fileSource(file: string): ObjectSource {
  const size = fs.statSync(file).size;
  return {
    size,
    async read(start, end) {
      if (start < 0 || end > size || start > end) throw new RangeError(`bad read [${start}, ${end})`);
      if (start === end) return (async function* () {})();
      return fs.createReadStream(file, { start, end: end - 1 });
    },
  };
}

/** The file name a stored object carries, if it is safe to create in a directory as it is. */
export function safeFileName(name: string): string {
  const base = name.normalize('NFC');
  if (!base || base === '.' || base === '..' || /[/\\\0]/.test(base) || path.basename(base) !== base) {
    throw new OfflineError(`The object's file name ${JSON.stringify(name)} is not a plain file name; refusing to write it`);
  }
  return base;
}

export interface DecryptedFile {
  name: string;
  date: Date;
  size: number;
  path: string;
}

/**
 * Decrypts a stored object into `outDir` under its original name. Refuses to overwrite; a file
 * left half-written by a failure (a chunk that does not authenticate) is removed.
 */
export async function decryptObjectFile(objectFile: string, keys: openpgp.PrivateKey[], outDir: string): Promise<DecryptedFile> {
  const object = await openStoredObject(fileSource(objectFile), keys);
  const name = safeFileName(object.name);
  fs.mkdirSync(outDir, { recursive: true });
  const target = path.join(outDir, name);
  let out: fs.WriteStream;
  try {
    fs.closeSync(fs.openSync(target, 'wx', 0o600));
    out = fs.createWriteStream(target, { flags: 'w' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new OfflineError(`${target} exists already; refusing to overwrite it`);
    throw err;
  }
  try {
    await pipeline(Readable.from(object.plaintext()), out);
  } catch (err) {
    fs.rmSync(target, { force: true });
    throw err;
  }
  return { name, date: object.date, size: object.fileSize, path: target };
}
