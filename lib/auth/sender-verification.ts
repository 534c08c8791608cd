/**
 * Sender email verification, for mailboxes whose policy requires it: a one-time code mailed to
 * the address the sender typed proves they read mail there. The code is 6 digits, good for 10
 * minutes, 5 tries and one use. Only an HMAC of it is stored (a per-code salt, keyed by a secret
 * derived from the session secret, which is not in the database), bound to mailbox and address.
 *
 * A correct code starts a short sender session: a sealed cookie binding { email, mailboxId,
 * verifiedAt }. createDelivery (lib/deliveries) then marks the delivery sender_verified and
 * accepts only that address for the mailbox.
 *
 * Asking for a code answers the same whether or not the link exists, the mailbox requires
 * verification, or the address was seen before, and in the same time (no enumeration). Wrong tries
 * are also counted per address where no code exists, so "too many tries" gives nothing away either.
 */
import crypto from 'node:crypto';
import { z } from 'zod';
import { audit } from '@/lib/audit';
import { db, type Queryable } from '@/lib/db';
import { HttpError } from '@/lib/http';
import { queueMail } from '@/lib/mail';
import { emailSchema, findFiledropMailbox } from '@/lib/mailboxes';
import { consume, isRateLimitError, limitCodeCheck, limitCodeRequest, limitReached, resetLimit, type RateLimitSpec } from '@/lib/ratelimit';
import { waitForFloor } from './answer-floor';
import { cookieOptions, seal, sessionPassword, unseal, type CookieJar } from './session';

export const SENDER_CODE_DIGITS = 6;
export const SENDER_CODE_TTL_MS = 10 * 60_000;
/** Tries per code, and wrong tries per address and mailbox within the code's lifetime. */
export const SENDER_CODE_MAX_ATTEMPTS = 5;
/** Codes for one address and mailbox that may be open at once; a newer one retires the oldest. */
export const MAX_OPEN_SENDER_CODES = 3;
/** Every answer to a code request takes at least this long, mail or not. */
export const CODE_REQUEST_FLOOR_MS = 300;
export const SENDER_COOKIE = 'inkast_sender';
/** How long a verified address stays bound to the browser: enough to fill in the form and start. */
export const SENDER_SESSION_TTL_MS = 60 * 60_000;

const FAILURES: RateLimitSpec = { points: SENDER_CODE_MAX_ATTEMPTS, durationMs: SENDER_CODE_TTL_MS };

/** An address proven by a code, for one mailbox. */
export interface VerifiedSender {
  email: string;
  mailboxId: string;
  /** Milliseconds since the epoch. */
  verifiedAt: number;
}

export type SenderCodeProblem = 'code-wrong' | 'code-expired' | 'code-used' | 'code-locked';

/** A code refused: the status and code say why; `attemptsLeft` after a wrong one. */
export class SenderCodeError extends HttpError {
  constructor(
    readonly problem: SenderCodeProblem,
    readonly attemptsLeft?: number,
  ) {
    const [status, message] = {
      'code-wrong': [400, 'The code is not right; check the latest email and try again'],
      'code-expired': [410, 'The code has expired; ask for a new one'],
      'code-used': [409, 'The code has been used already; ask for a new one'],
      'code-locked': [403, 'Too many wrong tries; ask for a new code'],
    }[problem] as [number, string];
    super(status, problem, message);
  }
}

const slugSchema = z.string().max(64);
const requestSchema = z.object({ slug: slugSchema, email: z.unknown(), locale: z.enum(['sv', 'en']).catch('sv') });
const verifySchema = z.object({ slug: slugSchema, email: z.unknown(), code: z.string().max(32) });

function parseEmail(value: unknown): string {
  const parsed = emailSchema.safeParse(value);
  if (!parsed.success) throw new HttpError(400, 'invalid-email', 'Give a valid email address');
  return parsed.data;
}

/** The HMAC key for codes: derived from the session secret, so a database copy alone cannot test codes. */
function codeKey(): Buffer {
  return Buffer.from(crypto.hkdfSync('sha256', sessionPassword(), Buffer.alloc(0), 'inkast/sender-code/v1', 32));
}

function codeHash(key: Buffer, salt: Buffer, mailboxId: string, email: string, code: string): Buffer {
  return crypto.createHmac('sha256', key).update(salt).update(`\0${mailboxId}\0${email}\0${code}`).digest();
}

/** Wrong tries are counted per link and address, whether or not a code exists for them. */
const failureKey = (slug: string, email: string) => `${slug}\0${email}`;

/**
 * Mails a code when the link's mailbox requires verified senders; does nothing visible
 * otherwise. Rate limited per address and per IP (RateLimitError). A malformed address is a 400.
 */
export async function requestSenderCode(input: unknown, ctx: { ip: string }): Promise<void> {
  const parsed = requestSchema.safeParse(input);
  if (!parsed.success) throw new HttpError(400, 'invalid-input', z.prettifyError(parsed.error));
  const { slug, locale } = parsed.data;
  const email = parseEmail(parsed.data.email);
  await limitCodeRequest(ctx.ip, email);
  const started = performance.now();
  try {
    const mailbox = await findFiledropMailbox(slug);
    if (!mailbox?.requireVerifiedSender) return;
    await (await db()).transaction(async (tx) => {
      await tx.query(`DELETE FROM sender_codes WHERE expires_at < now() - interval '1 day'`);
      // Only the newest few stay open: each open code is a target for guesses.
      await tx.query(
        `UPDATE sender_codes SET expires_at = now()
          WHERE id IN (SELECT id FROM sender_codes
                        WHERE mailbox_id = $1 AND email = $2 AND used_at IS NULL AND expires_at > now()
                        ORDER BY created_at DESC OFFSET $3)`,
        [mailbox.id, email, MAX_OPEN_SENDER_CODES - 1],
      );
      const code = crypto.randomInt(0, 10 ** SENDER_CODE_DIGITS).toString().padStart(SENDER_CODE_DIGITS, '0');
      const salt = crypto.randomBytes(16);
      const row = (
        await tx.query<{ id: string; expires_at: Date }>(
          `INSERT INTO sender_codes (mailbox_id, email, salt, code_hash, expires_at)
           VALUES ($1, $2, $3, $4, now() + $5 * interval '1 millisecond') RETURNING id, expires_at`,
          [mailbox.id, email, salt, codeHash(codeKey(), salt, mailbox.id, email, code), SENDER_CODE_TTL_MS],
        )
      ).rows[0];
      await queueMail(tx, {
        to: email,
        template: 'sender-code',
        locale,
        params: { code, expiresAt: new Date(row.expires_at) },
        dedupeKey: `sender-code:${row.id}`,
      });
      await audit(tx, { actor: `sender:${email}`, action: 'sender.code-sent', target: `mailbox:${mailbox.id}` });
    });
    // A new code gets its own tries.
    await resetLimit('codeFailuresPerAddress', FAILURES, failureKey(slug, email));
  } finally {
    await waitForFloor(started, CODE_REQUEST_FLOOR_MS);
  }
}

interface CodeRow {
  id: string;
  salt: Uint8Array;
  code_hash: Uint8Array;
  attempts: number;
  expired: boolean;
  used: boolean;
}

/** Checks the code against this address's codes for the mailbox, spending it when it is right. */
async function checkCode(
  tx: Queryable,
  mailboxId: string,
  email: string,
  code: string,
): Promise<'ok' | 'wrong' | 'expired' | 'used' | 'locked'> {
  const rows = (
    await tx.query<CodeRow>(
      `SELECT id, salt, code_hash, attempts, expires_at <= now() AS expired, used_at IS NOT NULL AS used
         FROM sender_codes WHERE mailbox_id = $1 AND email = $2 AND created_at > now() - interval '1 day'
        ORDER BY created_at DESC FOR UPDATE`,
      [mailboxId, email],
    )
  ).rows;
  const key = codeKey();
  const match = rows.find((r) =>
    crypto.timingSafeEqual(codeHash(key, Buffer.from(r.salt), mailboxId, email, code), Buffer.from(r.code_hash)),
  );
  if (!match) {
    await tx.query(
      `UPDATE sender_codes SET attempts = attempts + 1
        WHERE mailbox_id = $1 AND email = $2 AND used_at IS NULL AND expires_at > now() AND attempts < $3`,
      [mailboxId, email, SENDER_CODE_MAX_ATTEMPTS],
    );
    return 'wrong';
  }
  if (match.used) return 'used';
  if (match.expired) return 'expired';
  if (match.attempts >= SENDER_CODE_MAX_ATTEMPTS) return 'locked';
  await tx.query(`UPDATE sender_codes SET used_at = now() WHERE id = $1`, [match.id]);
  // The address is proven: the other open codes are retired with it.
  await tx.query(
    `UPDATE sender_codes SET expires_at = now() WHERE mailbox_id = $1 AND email = $2 AND used_at IS NULL AND expires_at > now()`,
    [mailboxId, email],
  );
  await audit(tx, { actor: `sender:${email}`, action: 'sender.verified', target: `mailbox:${mailboxId}` });
  return 'ok';
}

/**
 * Checks a code for `{ slug, email, code }` and returns the verified sender, or throws
 * SenderCodeError (wrong 400, expired 410, used 409, too many tries 403), HttpError 400 for
 * malformed input, RateLimitError past the per-IP limit.
 */
export async function verifySenderCode(input: unknown, ctx: { ip: string }): Promise<VerifiedSender> {
  const parsed = verifySchema.safeParse(input);
  if (!parsed.success) throw new HttpError(400, 'invalid-input', z.prettifyError(parsed.error));
  const { slug } = parsed.data;
  const email = parseEmail(parsed.data.email);
  const code = parsed.data.code.replace(/[\s-]/g, '');
  if (!new RegExp(`^[0-9]{${SENDER_CODE_DIGITS}}$`).test(code)) {
    throw new HttpError(400, 'invalid-code', `The code is ${SENDER_CODE_DIGITS} digits`);
  }
  await limitCodeCheck(ctx.ip);
  const failures = failureKey(slug, email);
  if (await limitReached('codeFailuresPerAddress', FAILURES, failures)) throw new SenderCodeError('code-locked');

  const mailbox = await findFiledropMailbox(slug);
  const outcome = mailbox?.requireVerifiedSender
    ? await (await db()).transaction((tx) => checkCode(tx, mailbox.id, email, code))
    : 'wrong';
  if (outcome === 'ok') return { email, mailboxId: mailbox!.id, verifiedAt: Date.now() };
  if (outcome !== 'wrong') throw new SenderCodeError(`code-${outcome}`);
  let left: number;
  try {
    left = (await consume('codeFailuresPerAddress', FAILURES, failures)).remaining;
  } catch (err) {
    if (isRateLimitError(err)) throw new SenderCodeError('code-locked');
    throw err;
  }
  throw left > 0 ? new SenderCodeError('code-wrong', left) : new SenderCodeError('code-locked');
}

// ---- the sender session ----

interface SealedSender extends VerifiedSender {
  purpose: 'sender';
}

/** Binds the verified address to this browser (a route handler's cookie jar). */
export async function startSenderSession(jar: CookieJar, sender: VerifiedSender): Promise<void> {
  const data: SealedSender = { purpose: 'sender', ...sender };
  jar.set(SENDER_COOKIE, await seal(data, SENDER_SESSION_TTL_MS), cookieOptions({ maxAge: SENDER_SESSION_TTL_MS / 1000 }));
}

export function clearSenderSession(jar: CookieJar): void {
  jar.set(SENDER_COOKIE, '', cookieOptions({ maxAge: 0 }));
}

/** The verified sender in a sealed cookie value, or null (absent, forged, expired, another kind of seal). */
export async function readSenderSession(sealed: string | undefined, now = Date.now()): Promise<VerifiedSender | null> {
  if (!sealed) return null;
  const d = await unseal(sealed, SENDER_SESSION_TTL_MS);
  if (
    d?.purpose !== 'sender' ||
    typeof d.email !== 'string' ||
    typeof d.mailboxId !== 'string' ||
    !Number.isSafeInteger(d.verifiedAt) ||
    now - (d.verifiedAt as number) >= SENDER_SESSION_TTL_MS ||
    (d.verifiedAt as number) > now + 60_000
  ) {
    return null;
  }
  return { email: d.email, mailboxId: d.mailboxId, verifiedAt: d.verifiedAt as number };
}

/** The verified sender of a request, read from its Cookie header. */
export function senderFromRequest(req: Request): Promise<VerifiedSender | null> {
  const header = req.headers.get('cookie') ?? '';
  const value = header
    .split(';')
    .map((part) => part.trim())
    .find((part) => part.startsWith(`${SENDER_COOKIE}=`))
    ?.slice(SENDER_COOKIE.length + 1);
  return readSenderSession(value ? decodedCookie(value) : undefined);
}

/** A cookie value as set, or undefined when it is not valid percent-encoding (no seal of ours). */
function decodedCookie(value: string): string | undefined {
  try {
    return decodeURIComponent(value);
  } catch {
    return undefined;
  }
}
