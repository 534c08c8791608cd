/** The `mail` job: sends one outbox row over SMTP, or keeps it for the admin when there is no SMTP. */
import nodemailer from 'nodemailer';
import { logger } from '@/lib/log';
import { config, type Config } from '@/lib/config';
import { PermanentJobError, registerJobHandler, type JobContext } from '@/lib/jobs';

export const MAIL_JOB = 'mail';

type MailJobPayload = { outboxId: string };

export type MailSettings = Pick<Config, 'smtpUrl' | 'mailFrom' | 'logLevel'>;

interface OutboxRow {
  id: string;
  to_address: string;
  template: string;
  locale: string;
  subject: string;
  text_body: string;
  html_body: string;
  state: 'queued' | 'sent' | 'failed' | 'kept';
}

// Well under the job lease, so a hung server fails this attempt instead of outliving it.
const SMTP_TIMEOUTS = { connectionTimeout: 30_000, greetingTimeout: 30_000, socketTimeout: 60_000 };

/** The domain of MAIL_FROM, the right-hand side of our Message-IDs. */
function messageIdDomain(mailFrom: string): string {
  return /@([^\s<>@]+)>?\s*$/.exec(mailFrom)?.[1] ?? 'inkast.invalid';
}

/**
 * A rejection the same message would get again (5xx, as nodemailer classifies it). A failed
 * login is left transient even as 535: it is fixed in the configuration, not in the mail.
 */
function isPermanent(err: unknown): boolean {
  const e = err as { permanent?: boolean; code?: string };
  return e.permanent === true && e.code !== 'EAUTH';
}

/**
 * Registers the `mail` job handler. `settings` defaults to the process config, read when each mail
 * is sent; tests pass their own (an SMTP URL pointing at a loopback smtp-server).
 */
export function registerMailJobs(settings?: MailSettings): void {
  const log = logger('mail');
  registerJobHandler<MailJobPayload>(MAIL_JOB, async ({ outboxId }, ctx: JobContext) => {
    const { smtpUrl, mailFrom } = settings ?? config();
    const q = ctx.db;
    const mail = (await q.query<OutboxRow>(`SELECT * FROM outbox WHERE id = $1`, [outboxId])).rows[0];
    if (!mail) throw new PermanentJobError('outbox row not found');
    // Sent, kept or failed already: a retry after a crash must not send it again.
    if (mail.state !== 'queued') return;
    // Logs name the recipient and template only: bodies carry sign-in links.
    const fields = { outboxId, to: mail.to_address, template: mail.template };

    if (!smtpUrl) {
      await q.query(`UPDATE outbox SET state = 'kept' WHERE id = $1 AND state = 'queued'`, [outboxId]);
      log.info(fields, 'no SMTP configured: mail kept in the outbox');
      return;
    }

    await q.query(`UPDATE outbox SET attempts = attempts + 1 WHERE id = $1`, [outboxId]);
    const transport = nodemailer.createTransport({ url: smtpUrl, ...SMTP_TIMEOUTS });
    try {
      await transport.sendMail({
        from: mailFrom,
        to: mail.to_address,
        subject: mail.subject,
        text: mail.text_body,
        html: mail.html_body,
        // Stable across retries: if a crash after the server's acceptance makes us send again,
        // the receiving side can recognise the duplicate.
        messageId: `<${mail.id}@${messageIdDomain(mailFrom)}>`,
        headers: { 'Auto-Submitted': 'auto-generated', 'Content-Language': mail.locale },
      });
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      const permanent = isPermanent(err);
      const final = permanent || ctx.attempt >= ctx.maxAttempts;
      await q.query(`UPDATE outbox SET last_error = $2, state = CASE WHEN $3 THEN 'failed' ELSE state END WHERE id = $1`, [
        outboxId,
        message,
        final,
      ]);
      log.warn({ ...fields, attempt: ctx.attempt, permanent, err: message }, 'mail not sent');
      throw permanent ? new PermanentJobError(message) : err;
    } finally {
      transport.close();
    }
    await q.query(`UPDATE outbox SET state = 'sent', sent_at = now(), last_error = NULL WHERE id = $1`, [outboxId]);
    log.info(fields, 'mail sent');
  });
}
