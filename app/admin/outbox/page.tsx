import type { Metadata } from 'next';
import { notFound } from 'next/navigation';
import { AccountBar } from '@/app/inbox/account-bar';
import { Pagination } from '@/app/inbox/pagination';
import { Time } from '@/app/inbox/time';
import { requireAdmin } from '@/lib/auth';
import { db } from '@/lib/db';
import { isLocale, t } from '@/lib/i18n';
import { LocaleFromQuery } from '@/lib/i18n/locale-from-query';
import { requestLocale } from '@/lib/i18n/server';
import { listOutbox } from '@/lib/mail';

type SearchParams = Promise<Record<string, string | string[] | undefined>>;

const PAGE_SIZE = 50;

export async function generateMetadata({ searchParams }: { searchParams: SearchParams }): Promise<Metadata> {
  return { title: t(await requestLocale(searchParams), 'admin.outbox.title') };
}

/**
 * Every mail Inkast queued, with its text. Without SMTP_URL this page is how mail (sign-in links
 * among it) reaches anyone at all, hence administrators only.
 */
export default async function OutboxPage({ searchParams }: { searchParams: SearchParams }) {
  const params = await searchParams;
  const user = await requireAdmin('/admin/outbox');
  const locale = await requestLocale(searchParams);
  const lang = isLocale(params.lang) && <LocaleFromQuery locale={locale} />;

  const page = Math.max(1, Math.trunc(Number(Array.isArray(params.page) ? params.page[0] : params.page)) || 1);
  const { entries, total } = await listOutbox(await db(), { limit: PAGE_SIZE, offset: (page - 1) * PAGE_SIZE });
  const pageCount = Math.max(1, Math.ceil(total / PAGE_SIZE));
  if (page > pageCount) notFound();

  return (
    <>
      {lang}
      <AccountBar locale={locale} user={user} current="outbox" />
      <h1>{t(locale, 'admin.outbox.title')}</h1>
      <p className="lead">{t(locale, 'admin.outbox.lead')}</p>
      {entries.length === 0 ? (
        <p>{t(locale, 'admin.outbox.none')}</p>
      ) : (
        <div className="table-wrap">
          <table className="data-table">
            <caption>{t(locale, 'admin.outbox.caption', { page, pages: pageCount })}</caption>
            <thead>
              <tr>
                <th scope="col">{t(locale, 'admin.outbox.column.created')}</th>
                <th scope="col">{t(locale, 'admin.outbox.column.to')}</th>
                <th scope="col">{t(locale, 'admin.outbox.column.template')}</th>
                <th scope="col">{t(locale, 'admin.outbox.column.subject')}</th>
                <th scope="col">{t(locale, 'admin.outbox.column.state')}</th>
                <th scope="col">{t(locale, 'admin.outbox.column.sent')}</th>
              </tr>
            </thead>
            <tbody>
              {entries.map((m) => (
                <tr key={m.id} data-testid="outbox-entry">
                  <td className="nowrap">
                    <Time locale={locale} date={m.createdAt} />
                  </td>
                  <td>{m.to}</td>
                  <td>
                    <code>{m.template}</code>
                  </td>
                  <th scope="row" className="outbox-subject">
                    {m.subject}
                    <details>
                      <summary>{t(locale, 'admin.outbox.showText')}</summary>
                      {/* Text, not the HTML part: nothing in a mail can run or load on this page. */}
                      <pre className="mail-text">{m.text}</pre>
                    </details>
                  </th>
                  <td>
                    <span className={`status status-mail-${m.state}`}>{t(locale, `admin.outbox.state.${m.state}`)}</span>
                    {m.attempts > 0 && <span className="subtle">{t(locale, 'admin.outbox.attempts', { count: m.attempts })}</span>}
                    {m.lastError && <span className="subtle break-word">{t(locale, 'admin.outbox.lastError', { error: m.lastError })}</span>}
                  </td>
                  <td className="nowrap">
                    {m.sentAt ? <Time locale={locale} date={m.sentAt} /> : <span className="subtle-inline">{t(locale, 'admin.outbox.notSent')}</span>}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <Pagination locale={locale} page={page} pageCount={pageCount} href={(p) => (p > 1 ? `/admin/outbox?page=${p}` : '/admin/outbox')} />
    </>
  );
}
