/**
 * The manifest of a delivery: subject, message and the files' names, types, sizes and SHA-256,
 * encrypted in the browser to the mailbox keys as a plain OpenPGP message. The server stores it
 * encrypted and validates it only after decrypting.
 */
import * as openpgp from 'openpgp';
import { z } from 'zod';

const utf8Length = (s: string) => new TextEncoder().encode(s).length;

export const manifestFileSchema = z.strictObject({
  uploadId: z.string().min(1).max(128),
  name: z
    .string()
    .min(1)
    .refine((s) => utf8Length(s) <= 255, 'must be at most 255 UTF-8 bytes'),
  type: z.string().max(255),
  size: z.number().int().min(0),
  sha256: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits'),
});

export const manifestSchema = z.strictObject({
  version: z.literal(1),
  subject: z.string().max(200),
  message: z.string().max(10_000),
  files: z.array(manifestFileSchema).max(1000),
});

export type Manifest = z.infer<typeof manifestSchema>;
export type ManifestFile = Manifest['files'][number];

/** The manifest cannot be decrypted, is not JSON, or breaks a limit; the message says which. */
export class ManifestError extends Error {
  override name = 'ManifestError';
}

function validated(value: unknown): Manifest {
  const result = manifestSchema.safeParse(value);
  if (!result.success) {
    const issues = result.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new ManifestError(`invalid manifest: ${issues.join('; ')}`);
  }
  return result.data;
}

/** Validates, then encrypts to the armored public keys (binary OpenPGP message). */
export async function encryptManifest(manifest: Manifest, publicKeys: string[]): Promise<Uint8Array> {
  const valid = validated(manifest);
  const encryptionKeys = await Promise.all(publicKeys.map((armoredKey) => openpgp.readKey({ armoredKey })));
  const message = await openpgp.createMessage({ binary: new TextEncoder().encode(JSON.stringify(valid)) });
  return openpgp.encrypt({ message, encryptionKeys, format: 'binary' });
}

/** Decrypts and validates; throws ManifestError on anything but a well-formed manifest. */
export async function decryptManifest(bytes: Uint8Array, privateKeys: openpgp.PrivateKey[]): Promise<Manifest> {
  let text: string;
  try {
    const message = await openpgp.readMessage({ binaryMessage: bytes });
    const { data } = await openpgp.decrypt({ message, decryptionKeys: privateKeys, format: 'binary' });
    text = new TextDecoder('utf-8', { fatal: true }).decode(data);
  } catch (e) {
    throw new ManifestError(`cannot decrypt the manifest: ${(e as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ManifestError('the manifest is not JSON');
  }
  return validated(value);
}
