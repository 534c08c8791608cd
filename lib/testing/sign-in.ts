/**
 * Signing in from integration tests the way a handler does: a real SMTP server on loopback
 * receives the sign-in email, the link in it is followed, the session cookie comes back.
 */
import net from 'node:net';
import { simpleParser, type AddressObject, type ParsedMail } from 'mailparser';
import { SMTPServer } from 'smtp-server';

export interface MailCatcher {
  /** For the app's SMTP_URL. */
  url: string;
  received: ParsedMail[];
  /** The next mail to `address` not returned before (waits for it). */
  nextMailTo(address: string, timeoutMs?: number): Promise<ParsedMail>;
  /** The sign-in link in the next mail to `address`. */
  nextLinkTo(address: string, timeoutMs?: number): Promise<string>;
  /** Every mail to `address` so far, returned or not. */
  mailsTo(address: string): ParsedMail[];
  stop(): Promise<void>;
}

const recipients = (m: ParsedMail) =>
  (Array.isArray(m.to) ? m.to : m.to ? [m.to] : []).flatMap((a: AddressObject) => a.value.map((v) => v.address?.toLowerCase()));

/** A real SMTP server (smtp-server) on a free loopback port that keeps what it accepts. */
export async function startMailCatcher(): Promise<MailCatcher> {
  const received: ParsedMail[] = [];
  const taken = new Set<ParsedMail>();
  let arrived = () => {};
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onData(stream, _session, callback) {
      simpleParser(stream).then((mail) => {
        received.push(mail);
        arrived();
        callback();
      }, callback);
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.server.address() as net.AddressInfo).port;
  const mailsTo = (address: string) => received.filter((m) => recipients(m).includes(address.toLowerCase()));

  async function nextMailTo(address: string, timeoutMs = 15_000): Promise<ParsedMail> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const mail = mailsTo(address).find((m) => !taken.has(m));
      if (mail) {
        taken.add(mail);
        return mail;
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no mail to ${address} within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 250));
        arrived = () => (clearTimeout(timer), resolve());
      });
    }
  }

  return {
    url: `smtp://127.0.0.1:${port}`,
    received,
    nextMailTo,
    nextLinkTo: async (address, timeoutMs) => signInLinkFrom(await nextMailTo(address, timeoutMs)),
    mailsTo,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** The sign-in link in a mail's text part. */
export function signInLinkFrom(mail: ParsedMail): string {
  const link = /https?:\/\/\S+\/auth\/verify\?[^\s<>"]+/.exec(mail.text ?? '')?.[0];
  if (!link) throw new Error(`no sign-in link in the mail "${mail.subject}"`);
  return link;
}

/** `inkast_session=<seal>` from a response that set the session cookie, if it did. */
export function sessionCookieFrom(res: Response): string | undefined {
  for (const header of res.headers.getSetCookie()) {
    const value = /^inkast_session=([^;]*)/.exec(header)?.[1];
    if (value) return `inkast_session=${value}`;
  }
  return undefined;
}

/**
 * Asks the app for a sign-in link for `email`, reads it with `readLink` (e.g.
 * `() => smtp.nextLinkTo(email)`), follows it and returns the Cookie header value of the session.
 */
export async function signInWithEmail(appUrl: string, email: string, readLink: () => Promise<string>): Promise<string> {
  const asked = await fetch(`${appUrl}/api/auth/sign-in`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email }),
  });
  if (asked.status !== 202) throw new Error(`asking for a sign-in link answered ${asked.status}: ${await asked.text()}`);
  const verified = await fetch(await readLink(), { redirect: 'manual' });
  const cookie = sessionCookieFrom(verified);
  if (verified.status !== 303 || !cookie) {
    throw new Error(`the sign-in link for ${email} did not sign in (${verified.status} → ${verified.headers.get('location')})`);
  }
  return cookie;
}
