/**
 * Sender email verification in process, on PGlite and (when it answers) PostgreSQL: codes, their
 * refusals, the sender cookie, and createDelivery's use of it. The HTTP routes, the page and two
 * app instances sharing limits are in lib/ratelimit/cross-instance.test.ts and e2e.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { test } from 'node:test';
import { sealData } from 'iron-session';
import { db } from '@/lib/db';
import { createDelivery, DeliveryError } from '@/lib/deliveries';
import { HttpError } from '@/lib/http';
import { createUser } from '@/lib/mailboxes';
import { useFreshProcessState } from '@/lib/testing/process';
import { databaseTargets } from '@/lib/testing/targets';
import {
  CODE_REQUEST_FLOOR_MS,
  readSenderSession,
  requestSenderCode,
  SENDER_CODE_MAX_ATTEMPTS,
  SENDER_CODE_TTL_MS,
  SENDER_COOKIE,
  SENDER_SESSION_TTL_MS,
  SenderCodeError,
  senderFromRequest,
  startSenderSession,
  verifySenderCode,
  type SenderCodeProblem,
  type VerifiedSender,
} from './sender-verification';
import { sessionPassword, type CookieJar, type CookieOptions } from './session';

class Jar implements CookieJar {
  readonly values = new Map<string, string>();
  readonly writes: { name: string; value: string; options: CookieOptions }[] = [];
  get(name: string) {
    const value = this.values.get(name);
    return value === undefined ? undefined : { value };
  }
  set(name: string, value: string, options: CookieOptions) {
    this.writes.push({ name, value, options });
    if (options.maxAge === 0) this.values.delete(name);
    else this.values.set(name, value);
  }
}

const ip = '192.0.2.10';

async function count(sql: string, params: unknown[] = []): Promise<number> {
  return (await (await db()).query<{ n: number }>(`SELECT count(*)::int AS n FROM (${sql}) x`, params)).rows[0].n;
}

/** The code in the newest code mail to the address, as the sender reads it. */
async function mailedCode(address: string): Promise<string> {
  const row = (
    await (await db()).query<{ text_body: string }>(
      `SELECT text_body FROM outbox WHERE to_address = $1 AND template = 'sender-code' ORDER BY created_at DESC LIMIT 1`,
      [address],
    )
  ).rows[0];
  const code = row && /^(?:Kod|Code): (\d{6})$/m.exec(row.text_body)?.[1];
  assert.ok(code, `a code was mailed to ${address}`);
  return code;
}

async function askCode(slug: string, email: string, locale: 'sv' | 'en' = 'sv'): Promise<string> {
  await requestSenderCode({ slug, email, locale }, { ip });
  return mailedCode(email.trim().toLowerCase());
}

/** A different code of the right shape. */
const wrong = (code: string) => String((Number(code) + 1) % 1_000_000).padStart(6, '0');

async function refused(p: Promise<unknown>, problem: SenderCodeProblem, status: number): Promise<SenderCodeError> {
  let caught: unknown;
  await assert.rejects(p, (err: unknown) => {
    caught = err;
    return err instanceof SenderCodeError && err.code === problem && err.status === status;
  });
  return caught as SenderCodeError;
}

for (const target of await databaseTargets()) {
  test(`sender verification on ${target.name}`, async (t) => {
    const databaseUrl = await target.freshDatabase();
    await useFreshProcessState({
      INKAST_PUBLIC_URL: 'http://inkast.test',
      // Generous here; the limits themselves are tested in lib/ratelimit.
      INKAST_RATE_CODES_PER_ADDRESS: '1000/1h',
      INKAST_RATE_CODES_PER_IP: '1000/1h',
      INKAST_RATE_CODE_CHECKS_PER_IP: '1000/1h',
      ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
    });
    const q = await db();
    const strict = (await createUser({ email: 'mottagning@example.org', displayName: 'Mottagningen' })).mailbox;
    const open = (await createUser({ email: 'oppen@example.org', displayName: 'Öppen' })).mailbox;
    await q.query(`UPDATE mailboxes SET require_verified_sender = true WHERE id = $1`, [strict.id]);
    const slug = strict.filedrop_slug;

    await t.test('a code is mailed in the sender’s language and stored only as a salted HMAC', async () => {
      const code = await askCode(slug, ' Lakare@Region.Example ', 'en');
      assert.match(code, /^[0-9]{6}$/);
      const mail = (
        await q.query<{ subject: string; text_body: string }>(`SELECT subject, text_body FROM outbox WHERE to_address = 'lakare@region.example'`)
      ).rows;
      assert.equal(mail.length, 1);
      assert.equal(mail[0].subject, 'Your code for sending files with Inkast');
      const rows = (
        await q.query<{ salt: Uint8Array; code_hash: Uint8Array; ttl: number; attempts: number; mailbox_id: string }>(
          `SELECT salt, code_hash, attempts, mailbox_id, extract(epoch FROM expires_at - created_at)::int AS ttl
             FROM sender_codes WHERE email = 'lakare@region.example'`,
        )
      ).rows;
      assert.equal(rows.length, 1);
      assert.equal(rows[0].mailbox_id, strict.id);
      assert.equal(rows[0].salt.length, 16);
      assert.equal(rows[0].code_hash.length, 32);
      assert.equal(rows[0].attempts, 0);
      assert.ok(Math.abs(rows[0].ttl - SENDER_CODE_TTL_MS / 1000) <= 1, `valid for 10 minutes, not ${rows[0].ttl} s`);
      // Not the plain or salted SHA-256 of the code: without the server's key a copy of the table
      // cannot be searched through the million possible codes.
      const hash = Buffer.from(rows[0].code_hash);
      for (const guess of [crypto.createHash('sha256').update(code).digest(), crypto.createHash('sha256').update(Buffer.from(rows[0].salt)).update(code).digest()]) {
        assert.ok(!hash.equals(guess));
      }
      // The code travels in the mail only.
      const elsewhere = await count(
        `SELECT 1 FROM jobs WHERE payload::text LIKE $1 OR dedupe_key LIKE $1
         UNION ALL SELECT 1 FROM outbox WHERE dedupe_key LIKE $1
         UNION ALL SELECT 1 FROM audit_log WHERE detail::text LIKE $1 OR target LIKE $1`,
        [`%${code}%`],
      );
      assert.equal(elsewhere, 0);
    });

    await t.test('the right code verifies the address for that mailbox, once', async () => {
      const code = await askCode(slug, 'anna@vard.example');
      const sender = await verifySenderCode({ slug, email: 'Anna@Vard.example', code: `${code.slice(0, 3)} ${code.slice(3)}` }, { ip });
      assert.equal(sender.email, 'anna@vard.example');
      assert.equal(sender.mailboxId, strict.id);
      assert.ok(Math.abs(sender.verifiedAt - Date.now()) < 5000);
      const reused = await refused(verifySenderCode({ slug, email: 'anna@vard.example', code }, { ip }), 'code-used', 409);
      assert.match(reused.message, /used already/);
      assert.equal(await count(`SELECT 1 FROM audit_log WHERE action = 'sender.verified' AND actor = 'sender:anna@vard.example'`), 1);
    });

    await t.test('a wrong code is refused with the tries left', async () => {
      const code = await askCode(slug, 'bo@vard.example');
      const first = await refused(verifySenderCode({ slug, email: 'bo@vard.example', code: wrong(code) }, { ip }), 'code-wrong', 400);
      assert.equal(first.attemptsLeft, SENDER_CODE_MAX_ATTEMPTS - 1);
      const second = await refused(verifySenderCode({ slug, email: 'bo@vard.example', code: wrong(wrong(code)) }, { ip }), 'code-wrong', 400);
      assert.equal(second.attemptsLeft, SENDER_CODE_MAX_ATTEMPTS - 2);
      // Still good after a couple of slips.
      assert.equal((await verifySenderCode({ slug, email: 'bo@vard.example', code }, { ip })).email, 'bo@vard.example');
    });

    await t.test('a malformed code is a 400 that costs no try', async () => {
      const code = await askCode(slug, 'cilla@vard.example');
      for (const bad of ['12345', '1234567', 'abcdef', '', 42]) {
        await assert.rejects(
          verifySenderCode({ slug, email: 'cilla@vard.example', code: bad }, { ip }),
          (err: unknown) => err instanceof HttpError && err.status === 400 && !(err instanceof SenderCodeError),
        );
      }
      const attempts = (await q.query<{ attempts: number }>(`SELECT attempts FROM sender_codes WHERE email = 'cilla@vard.example'`)).rows[0];
      assert.equal(attempts.attempts, 0);
      assert.ok(await verifySenderCode({ slug, email: 'cilla@vard.example', code }, { ip }));
    });

    await t.test(`after ${SENDER_CODE_MAX_ATTEMPTS} wrong tries even the right code is refused, until a new one is sent`, async () => {
      const email = 'dora@vard.example';
      const code = await askCode(slug, email);
      let guess = code;
      for (let i = 1; i < SENDER_CODE_MAX_ATTEMPTS; i++) {
        guess = wrong(guess);
        const err = await refused(verifySenderCode({ slug, email, code: guess }, { ip }), 'code-wrong', 400);
        assert.equal(err.attemptsLeft, SENDER_CODE_MAX_ATTEMPTS - i);
      }
      const last = await refused(verifySenderCode({ slug, email, code: wrong(guess) }, { ip }), 'code-locked', 403);
      assert.match(last.message, /Too many wrong tries/);
      await refused(verifySenderCode({ slug, email, code }, { ip }), 'code-locked', 403);
      const stored = (await q.query<{ attempts: number }>(`SELECT attempts FROM sender_codes WHERE email = $1`, [email])).rows[0];
      assert.equal(stored.attempts, SENDER_CODE_MAX_ATTEMPTS);
      // A new code gets its own tries; the old one stays dead.
      const fresh = await askCode(slug, email);
      assert.notEqual(fresh, code);
      await refused(verifySenderCode({ slug, email, code }, { ip }), 'code-locked', 403);
      assert.equal((await verifySenderCode({ slug, email, code: fresh }, { ip })).email, email);
    });

    await t.test('an expired code is refused as expired', async () => {
      const email = 'erik@vard.example';
      const code = await askCode(slug, email);
      await q.query(`UPDATE sender_codes SET expires_at = now() - interval '1 second' WHERE email = $1`, [email]);
      await refused(verifySenderCode({ slug, email, code }, { ip }), 'code-expired', 410);
    });

    await t.test('a code is good only for the address and mailbox it was sent for', async () => {
      const code = await askCode(slug, 'fia@vard.example');
      await refused(verifySenderCode({ slug, email: 'fredrik@vard.example', code }, { ip }), 'code-wrong', 400);
      await refused(verifySenderCode({ slug: open.filedrop_slug, email: 'fia@vard.example', code }, { ip }), 'code-wrong', 400);
      await refused(verifySenderCode({ slug: 'JxF12TrwUP45BeS8TJ7ZdJ', email: 'fia@vard.example', code }, { ip }), 'code-wrong', 400);
      assert.equal((await verifySenderCode({ slug, email: 'fia@vard.example', code }, { ip })).email, 'fia@vard.example');
    });

    await t.test('the newest codes stay open; an older one still works if its mail came late', async () => {
      const email = 'gun@vard.example';
      const first = await askCode(slug, email);
      const second = await askCode(slug, email);
      assert.equal((await verifySenderCode({ slug, email, code: first }, { ip })).email, email);
      // Verifying retires the rest.
      await refused(verifySenderCode({ slug, email, code: second }, { ip }), 'code-expired', 410);
    });

    await t.test('asking for a code: the same answer, in the same time, whatever the link and address', async () => {
      const timed = async (s: string, email: string) => {
        const started = performance.now();
        const result = await requestSenderCode({ slug: s, email }, { ip });
        return { result, ms: performance.now() - started };
      };
      const before = await count(`SELECT 1 FROM outbox`);
      const answers = [
        await timed('JxF12TrwUP45BeS8TJ7ZdJ', 'x@vard.example'), // no such link
        await timed('not a slug', 'x@vard.example'),
        await timed(open.filedrop_slug, 'x@vard.example'), // no verification asked there
        await timed(slug, 'x@vard.example'),
      ];
      assert.equal(await count(`SELECT 1 FROM outbox`), before + 1, 'only the mailbox with the policy mails');
      for (const a of answers) {
        assert.equal(a.result, undefined);
        assert.ok(a.ms >= CODE_REQUEST_FLOOR_MS - 1, `answered in ${a.ms} ms`);
      }
      const ms = answers.map((a) => a.ms);
      assert.ok(Math.max(...ms) - Math.min(...ms) < 150, `the answers took ${ms.join(', ')} ms`);
      await assert.rejects(requestSenderCode({ slug, email: 'not-an-address' }, { ip }), (e: unknown) => e instanceof HttpError && e.status === 400);
    });

    await t.test('too many tries looks the same for an address nobody asked a code for', async () => {
      for (let i = 1; i < SENDER_CODE_MAX_ATTEMPTS; i++) {
        const err = await refused(verifySenderCode({ slug, email: 'nobody@vard.example', code: '000000' }, { ip }), 'code-wrong', 400);
        assert.equal(err.attemptsLeft, SENDER_CODE_MAX_ATTEMPTS - i);
      }
      await refused(verifySenderCode({ slug, email: 'nobody@vard.example', code: '000000' }, { ip }), 'code-locked', 403);
    });

    await t.test('the sender cookie binds the address; forged, foreign and stale ones are nothing', async () => {
      const sender: VerifiedSender = { email: 'hanna@vard.example', mailboxId: strict.id, verifiedAt: Date.now() };
      const jar = new Jar();
      await startSenderSession(jar, sender);
      const written = jar.writes.find((w) => w.name === SENDER_COOKIE)!;
      assert.deepEqual(written.options, { httpOnly: true, secure: false, sameSite: 'lax', path: '/', maxAge: SENDER_SESSION_TTL_MS / 1000 });
      assert.deepEqual(await readSenderSession(written.value), sender);
      const cookieHeader = `other=1; ${SENDER_COOKIE}=${encodeURIComponent(written.value)}`;
      assert.deepEqual(await senderFromRequest(new Request('http://inkast.test/', { headers: { cookie: cookieHeader } })), sender);
      const mangled = new Request('http://inkast.test/', { headers: { cookie: `${SENDER_COOKIE}=%%%` } });
      assert.equal(await senderFromRequest(mangled), null, 'a cookie that is not percent-encoding is no sender, not an error');

      assert.equal(await readSenderSession(written.value, sender.verifiedAt + SENDER_SESSION_TTL_MS), null, 'stale after an hour');
      const tampered = written.value.slice(0, 40) + (written.value[40] === 'A' ? 'B' : 'A') + written.value.slice(41);
      assert.equal(await readSenderSession(tampered), null);
      const foreign = await sealData({ purpose: 'sender', ...sender }, { password: crypto.randomBytes(32).toString('hex'), ttl: 3600 });
      assert.equal(await readSenderSession(foreign), null);
      // A handler's session seal under the same secret is not a sender's.
      const handler = await sealData({ userId: crypto.randomUUID(), epoch: 0, issuedAt: Date.now(), seenAt: Date.now() }, { password: sessionPassword(), ttl: 3600 });
      assert.equal(await readSenderSession(handler), null);
      assert.equal(await senderFromRequest(new Request('http://inkast.test/')), null);
    });

    await t.test('createDelivery: the policy wants the proven address, and the delivery records it', async () => {
      const proven: VerifiedSender = { email: 'ivar@vard.example', mailboxId: strict.id, verifiedAt: Date.now() };
      const input = (email: string, s = slug) => ({ slug: s, senderEmail: email, locale: 'sv' });
      const status = async (p: Promise<unknown>) => {
        const err = await p.then(() => undefined, (e: unknown) => e);
        assert.ok(err instanceof DeliveryError, String(err));
        return [err.status, err.code];
      };
      assert.deepEqual(await status(createDelivery(input('ivar@vard.example'))), [401, 'sender-verification-required']);
      assert.deepEqual(
        await status(createDelivery(input('ivar@vard.example'), { sender: { ...proven, mailboxId: open.id } })),
        [401, 'sender-verification-required'],
        'proven for another mailbox',
      );
      assert.deepEqual(await status(createDelivery(input('someone.else@vard.example'), { sender: proven })), [409, 'sender-email-mismatch']);

      const made = await createDelivery(input('Ivar@Vard.example'), { sender: proven });
      assert.equal(made.senderVerified, true);
      const row = (await q.query<{ sender_email: string; sender_verified: boolean }>(`SELECT sender_email, sender_verified FROM deliveries WHERE id = $1`, [made.deliveryId])).rows[0];
      assert.deepEqual(row, { sender_email: 'ivar@vard.example', sender_verified: true });

      // Without the policy: anyone may send, and the address is marked unverified.
      const plain = await createDelivery(input('ivar@vard.example', open.filedrop_slug));
      assert.equal(plain.senderVerified, false);
      const plainRow = (await q.query<{ sender_verified: boolean }>(`SELECT sender_verified FROM deliveries WHERE id = $1`, [plain.deliveryId])).rows[0];
      assert.equal(plainRow.sender_verified, false);
    });

    await t.test('the whole path: code, cookie, delivery', async () => {
      const email = 'jonna@vard.example';
      const sender = await verifySenderCode({ slug, email, code: await askCode(slug, email) }, { ip });
      const jar = new Jar();
      await startSenderSession(jar, sender);
      const fromCookie = await readSenderSession(jar.get(SENDER_COOKIE)!.value);
      const made = await createDelivery({ slug, senderEmail: email, locale: 'sv' }, { ip, sender: fromCookie });
      assert.equal(made.senderVerified, true);
    });
  });
}
