import type { Metadata } from 'next';
import { cookies } from 'next/headers';
import { notFound } from 'next/navigation';
import { cache } from 'react';
import { formatBytes, formatNumber, isLocale, t } from '@/lib/i18n';
import { LocaleFromQuery } from '@/lib/i18n/locale-from-query';
import { requestLocale } from '@/lib/i18n/server';
import { readSenderSession, SENDER_COOKIE } from '@/lib/auth/sender-verification';
import { findFiledropMailbox } from '@/lib/mailboxes';
import { Filedrop } from './filedrop';

type Params = Promise<{ slug: string }>;
type SearchParams = Promise<Record<string, string | string[] | undefined>>;

// Metadata and page ask for the same mailbox in one request: one query.
const filedropMailbox = cache(findFiledropMailbox);

export async function generateMetadata({ params, searchParams }: { params: Params; searchParams: SearchParams }): Promise<Metadata> {
  const locale = await requestLocale(searchParams);
  const mailbox = await filedropMailbox((await params).slug);
  return { title: mailbox ? t(locale, 'filedrop.metaTitle', { mailbox: mailbox.name }) : t(locale, 'notFound.title') };
}

/** A mailbox's filedrop link. Unknown and disabled links both end in the same 404. */
export default async function FiledropPage({ params, searchParams }: { params: Params; searchParams: SearchParams }) {
  const { slug } = await params;
  const mailbox = await filedropMailbox(slug);
  if (!mailbox) notFound();
  const locale = await requestLocale(searchParams);
  // An address this browser confirmed for this mailbox in the last hour needs no new code.
  const sender = mailbox.requireVerifiedSender ? await readSenderSession((await cookies()).get(SENDER_COOKIE)?.value) : null;
  return (
    <>
      {isLocale((await searchParams).lang) && <LocaleFromQuery locale={locale} />}
      <noscript>
        <p className="notice notice-error">{t(locale, 'filedrop.noScript')}</p>
      </noscript>
      <Filedrop
        slug={slug}
        locale={locale}
        mailboxName={mailbox.name}
        maxFiles={mailbox.maxFiles}
        maxBytes={mailbox.maxDeliveryBytes}
        limits={{
          files: formatNumber(locale, mailbox.maxFiles),
          size: formatBytes(locale, mailbox.maxDeliveryBytes),
          kept: t(locale, 'filedrop.limit.keptDays', { days: mailbox.retentionDays }),
        }}
        requireVerifiedSender={mailbox.requireVerifiedSender}
        verifiedEmail={sender?.mailboxId === mailbox.id ? sender.email : null}
      />
    </>
  );
}
