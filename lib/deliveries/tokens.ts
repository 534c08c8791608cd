import crypto from 'node:crypto';

/** A sender token: shown once to the sender's browser, stored only as its SHA-256. */
export function newSenderToken(): { token: string; hash: Buffer } {
  const token = crypto.randomBytes(32).toString('base64url');
  return { token, hash: hashToken(token) };
}

export function hashToken(token: string): Buffer {
  return crypto.createHash('sha256').update(token, 'utf8').digest();
}

// Crockford's base32 without I, L, O, U: a reference read over the phone is not misheard.
const REFERENCE_ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/** A short delivery reference such as IK-7KQ2-M9XD, for emails and phone calls: no content in it. */
export function newReference(): string {
  const bytes = crypto.randomBytes(8);
  const chars = [...bytes].map((b) => REFERENCE_ALPHABET[b % 32]);
  return `IK-${chars.slice(0, 4).join('')}-${chars.slice(4).join('')}`;
}
