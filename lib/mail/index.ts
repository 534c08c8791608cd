/**
 * Email: templates (./templates), the outbox, and the SMTP sender (./sender). A mail is rendered
 * into an `outbox` row and a `mail` job in the caller's transaction, so the event that causes it
 * and the mail commit together; a worker then sends it once (the outbox row records 'sent'; only a
 * crash between the server's acceptance and that record repeats it, with the same Message-ID).
 */
import { z } from 'zod';
import { config } from '@/lib/config';
import type { Queryable } from '@/lib/db';
import type { Locale } from '@/lib/i18n';
import { enqueue } from '@/lib/jobs';
import { MAIL_JOB } from './sender';
import { renderMail, type MailTemplate, type MailTemplates, type RenderContext } from './templates';

export { registerMailJobs, type MailSettings } from './sender';
export { renderMail, type DeliveryRejectReason, type MailTemplate, type MailTemplates, type RenderContext, type RenderedMail } from './templates';

export interface MailRequest<T extends MailTemplate> {
  to: string;
  template: T;
  locale: Locale;
  params: MailTemplates[T];
  /** One mail per key, ever (e.g. `receipt:<downloadId>`): queueing it again is a no-op. */
  dedupeKey: string;
}

// An SMTP outage of several hours must not lose mail: 20 attempts back off to ~10 h in total.
const MAIL_MAX_ATTEMPTS = 20;

const emailAddress = z.email();

/**
 * Renders the mail into the outbox and enqueues its `mail` job, both on `q` (pass the transaction
 * of the event that causes the mail). Returns the outbox id, the existing one for a repeated key.
 */
export async function queueMail<T extends MailTemplate>(
  q: Queryable,
  mail: MailRequest<T>,
  ctx: RenderContext = config(),
): Promise<string> {
  if (!emailAddress.safeParse(mail.to).success) throw new TypeError('queueMail: invalid recipient address');
  const rendered = renderMail(mail.template, mail.locale, mail.params, ctx);
  const inserted = await q.query<{ id: string }>(
    `INSERT INTO outbox (dedupe_key, to_address, template, locale, subject, text_body, html_body)
     VALUES ($1, $2, $3, $4, $5, $6, $7)
     ON CONFLICT (dedupe_key) DO NOTHING
     RETURNING id`,
    [mail.dedupeKey, mail.to, mail.template, mail.locale, rendered.subject, rendered.text, rendered.html],
  );
  const outboxId =
    inserted.rows[0]?.id ??
    (await q.query<{ id: string }>(`SELECT id FROM outbox WHERE dedupe_key = $1`, [mail.dedupeKey])).rows[0].id;
  // Enqueued even when the row existed: a caller not using a transaction may have crashed in between.
  // The key is prefixed because jobs of every kind share one dedupe namespace.
  await enqueue(q, MAIL_JOB, { outboxId }, { dedupeKey: `mail:${mail.dedupeKey}`, maxAttempts: MAIL_MAX_ATTEMPTS });
  return outboxId;
}

export type OutboxState = 'queued' | 'sent' | 'failed' | 'kept';

export interface OutboxEntry {
  id: string;
  to: string;
  template: MailTemplate;
  locale: Locale;
  subject: string;
  text: string;
  html: string;
  state: OutboxState;
  attempts: number;
  lastError: string | null;
  createdAt: Date;
  sentAt: Date | null;
}

/** The outbox, newest first, for the admin page (where kept mail is read when no SMTP is set). */
export async function listOutbox(
  q: Queryable,
  { limit = 50, offset = 0 }: { limit?: number; offset?: number } = {},
): Promise<{ entries: OutboxEntry[]; total: number }> {
  const [rows, count] = await Promise.all([
    q.query<{
      id: string;
      to_address: string;
      template: MailTemplate;
      locale: Locale;
      subject: string;
      text_body: string;
      html_body: string;
      state: OutboxState;
      attempts: number;
      last_error: string | null;
      created_at: Date;
      sent_at: Date | null;
    }>(
      `SELECT id, to_address, template, locale, subject, text_body, html_body, state, attempts, last_error, created_at, sent_at
         FROM outbox ORDER BY created_at DESC, id LIMIT $1 OFFSET $2`,
      [limit, offset],
    ),
    q.query<{ total: number }>(`SELECT count(*)::int AS total FROM outbox`),
  ]);
  return {
    entries: rows.rows.map((r) => ({
      id: r.id,
      to: r.to_address,
      template: r.template,
      locale: r.locale,
      subject: r.subject,
      text: r.text_body,
      html: r.html_body,
      state: r.state,
      attempts: r.attempts,
      lastError: r.last_error,
      createdAt: r.created_at,
      sentAt: r.sent_at,
    })),
    total: count.rows[0].total,
  };
}
