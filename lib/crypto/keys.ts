/**
 * Mailbox key pairs and their storage: the private key is kept in the database wrapped with the
 * instance master key (AES-256-GCM, the master key id as associated data). Node only.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import * as openpgp from 'openpgp';
import { assertSeipdV2 } from './encoder';

export interface MailboxKey {
  publicKey: string;
  privateKey: string;
  /** Hex, lowercase (v6: SHA-256, 64 digits). */
  fingerprint: string;
}

/** The wrapped private key is not readable with this master key and id (or was altered). */
export class KeyUnwrapError extends Error {
  override name = 'KeyUnwrapError';
}

/**
 * A curve25519 v6 key pair. aeadProtect makes it advertise SEIPDv2 (feature 0x08), without which
 * openpgp.js falls back to SEIPDv1 and the encoder refuses the key.
 */
export async function generateMailboxKey(userIdName: string): Promise<MailboxKey> {
  const { publicKey, privateKey } = await openpgp.generateKey({
    type: 'curve25519',
    userIDs: [{ name: userIdName }],
    format: 'object',
    config: { aeadProtect: true, v6Keys: true },
  });
  await assertSeipdV2(publicKey);
  return { publicKey: publicKey.armor(), privateKey: privateKey.armor(), fingerprint: publicKey.getFingerprint() };
}

const WRAP_VERSION = 1;
const NONCE_LENGTH = 12;
const TAG_LENGTH = 16;

function checkMasterKey(masterKey: Uint8Array): void {
  if (masterKey.length !== 32) throw new RangeError(`the master key must be 32 bytes, got ${masterKey.length}`);
}

/** version ‖ nonce(12) ‖ AES-256-GCM(armored) ‖ tag(16), bound to the master key id. */
export function wrapPrivateKey(masterKey: Uint8Array, masterKeyId: string, armored: string): Buffer {
  checkMasterKey(masterKey);
  const nonce = randomBytes(NONCE_LENGTH);
  const cipher = createCipheriv('aes-256-gcm', masterKey, nonce, { authTagLength: TAG_LENGTH });
  cipher.setAAD(Buffer.from(masterKeyId, 'utf8'));
  const body = Buffer.concat([cipher.update(armored, 'utf8'), cipher.final()]);
  return Buffer.concat([Buffer.of(WRAP_VERSION), nonce, body, cipher.getAuthTag()]);
}

export function unwrapPrivateKey(masterKey: Uint8Array, masterKeyId: string, wrapped: Uint8Array): string {
  checkMasterKey(masterKey);
  if (wrapped.length < 1 + NONCE_LENGTH + TAG_LENGTH || wrapped[0] !== WRAP_VERSION) {
    throw new KeyUnwrapError('not a wrapped private key (unknown version or too short)');
  }
  const nonce = wrapped.subarray(1, 1 + NONCE_LENGTH);
  const decipher = createDecipheriv('aes-256-gcm', masterKey, nonce, { authTagLength: TAG_LENGTH });
  decipher.setAAD(Buffer.from(masterKeyId, 'utf8'));
  decipher.setAuthTag(wrapped.subarray(wrapped.length - TAG_LENGTH));
  try {
    const plain = Buffer.concat([decipher.update(wrapped.subarray(1 + NONCE_LENGTH, wrapped.length - TAG_LENGTH)), decipher.final()]);
    return plain.toString('utf8');
  } catch {
    throw new KeyUnwrapError(`the private key does not unwrap with master key ${masterKeyId}: wrong key, wrong id or altered`);
  }
}

/** Reads armored private keys, which must not be passphrase-protected (the master key protects them). */
export async function readPrivateKeys(armored: string[]): Promise<openpgp.PrivateKey[]> {
  const keys = await Promise.all(armored.map((armoredKey) => openpgp.readPrivateKey({ armoredKey })));
  for (const k of keys) if (!k.isDecrypted()) throw new Error(`private key ${k.getFingerprint()} is passphrase-protected`);
  return keys;
}
