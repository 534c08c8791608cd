import type { Metadata } from 'next';
import { notFound } from 'next/navigation';
import { FiledropLinkField } from '@/app/filedrop-link-field';
import { requireUser } from '@/lib/auth';
import { inboxFor, listMailboxDeliveries, type DeliverySummary } from '@/lib/deliveries/inbox';
import { formatBytes, formatNumber, isLocale, t, type Locale, type PlainMessageKey } from '@/lib/i18n';
import { LocaleFromQuery } from '@/lib/i18n/locale-from-query';
import { requestLocale } from '@/lib/i18n/server';
import { filedropUrl, personalMailbox, type Mailbox } from '@/lib/mailboxes';
import { AccountBar } from './account-bar';
import { Pagination } from './pagination';
import { SenderAddress } from './sender';
import { Time } from './time';

type SearchParams = Promise<Record<string, string | string[] | undefined>>;

const first = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v);

function inboxHref(mailboxId: string, page = 1): string {
  const query = new URLSearchParams({ mailbox: mailboxId });
  if (page > 1) query.set('page', String(page));
  return `/inbox?${query}`;
}

/** What the handler just did, back from the form that did it (`?done=`). */
const doneNotices: Record<string, PlainMessageKey> = {
  'link-rotated': 'inbox.link.rotated',
  'delivery-deleted': 'inbox.deliveryDeleted',
};

export async function generateMetadata({ searchParams }: { searchParams: SearchParams }): Promise<Metadata> {
  return { title: t(await requestLocale(searchParams), 'inbox.title') };
}

/** The user's mailboxes with what is new in each, and one mailbox's deliveries (`?mailbox=&page=`). */
export default async function InboxPage({ searchParams }: { searchParams: SearchParams }) {
  const params = await searchParams;
  const mailboxParam = first(params.mailbox);
  const page = Number(first(params.page) ?? 1);
  const done = Object.hasOwn(doneNotices, first(params.done) ?? '') ? doneNotices[first(params.done)!] : undefined;
  const user = await requireUser(mailboxParam ? inboxHref(mailboxParam, page) : '/inbox');
  const locale = await requestLocale(searchParams);

  const mailboxes = await inboxFor(user.id);
  const own = await personalMailbox(user.id);
  const chosen = mailboxParam ?? mailboxes[0]?.id;
  const list = chosen ? await listMailboxDeliveries(user.id, chosen, { page }) : null;
  if (chosen && !list) notFound();

  return (
    <>
      {isLocale(params.lang) && <LocaleFromQuery locale={locale} />}
      <AccountBar locale={locale} user={user} current="inbox" />
      <h1>{t(locale, 'inbox.title')}</h1>
      {done && (
        <p className="notice notice-success" role="status">
          {t(locale, done)}
        </p>
      )}

      <nav aria-labelledby="mailboxes-heading">
        <h2 id="mailboxes-heading">{t(locale, 'inbox.mailboxes')}</h2>
        {mailboxes.length === 0 ? (
          <p>{t(locale, 'inbox.mailboxes.none')}</p>
        ) : (
          <ul className="mailbox-list">
            {mailboxes.map((m) => (
              <li key={m.id}>
                <a className="mailbox-link" href={inboxHref(m.id)} aria-current={m.id === chosen ? 'page' : undefined}>
                  <span className="mailbox-name">{m.name}</span>
                  <span className="subtle">
                    {t(locale, m.kind === 'personal' ? 'inbox.mailbox.personal' : 'inbox.mailbox.shared')}
                  </span>
                  {m.newCount > 0 && (
                    <span className="status status-new" data-testid="new-count">
                      {t(locale, 'inbox.mailbox.new', { count: m.newCount })}
                    </span>
                  )}
                </a>
              </li>
            ))}
          </ul>
        )}
      </nav>

      {own && <OwnFiledropLink locale={locale} mailbox={own} />}

      {list && (
        <section aria-labelledby="deliveries-heading" className="inbox-deliveries">
          <h2 id="deliveries-heading">{list.mailbox.name}</h2>
          {list.total === 0 ? (
            <p>{t(locale, 'inbox.deliveries.none', { mailbox: list.mailbox.name })}</p>
          ) : (
            <div className="table-wrap">
              <table className="data-table">
                <caption>
                  {t(locale, 'inbox.deliveries.caption', { mailbox: list.mailbox.name, page: list.page, pages: list.pageCount })}
                </caption>
                <thead>
                  <tr>
                    <th scope="col">{t(locale, 'inbox.column.subject')}</th>
                    <th scope="col">{t(locale, 'inbox.column.sender')}</th>
                    <th scope="col">{t(locale, 'inbox.column.received')}</th>
                    <th scope="col">{t(locale, 'inbox.column.files')}</th>
                    <th scope="col">{t(locale, 'inbox.column.state')}</th>
                    <th scope="col">{t(locale, 'inbox.column.downloadedBy')}</th>
                  </tr>
                </thead>
                <tbody>
                  {list.deliveries.map((d) => (
                    <DeliveryRow key={d.id} locale={locale} delivery={d} />
                  ))}
                </tbody>
              </table>
            </div>
          )}
          <Pagination locale={locale} page={list.page} pageCount={list.pageCount} href={(p) => inboxHref(list.mailbox.id, p)} />
        </section>
      )}
    </>
  );
}

/** The handler's own filedrop link to hand out, and a way to replace it when it has gone astray. */
function OwnFiledropLink({ locale, mailbox }: { locale: Locale; mailbox: Mailbox }) {
  const link = filedropUrl(mailbox.filedrop_slug);
  return (
    <section aria-labelledby="own-link-heading" className="card own-link">
      <h2 id="own-link-heading">{t(locale, 'inbox.link.heading')}</h2>
      {mailbox.filedrop_enabled ? (
        <>
          <p>{t(locale, 'inbox.link.lead')}</p>
          <FiledropLinkField
            id="own-link"
            testId="own-filedrop-link"
            label={t(locale, 'inbox.link.label')}
            link={link}
            texts={{
              label: t(locale, 'inbox.link.copy'),
              name: t(locale, 'inbox.link.copyNamed'),
              copied: t(locale, 'inbox.link.copied'),
              failed: t(locale, 'inbox.link.copyFailed'),
            }}
          />
          <p className="hint">{t(locale, 'inbox.link.rotateWarning')}</p>
          <form method="post" action={`/api/mailboxes/${mailbox.id}/link/rotate`}>
            <button type="submit" className="button button-quiet button-small">
              {t(locale, 'inbox.link.rotate')}
            </button>
          </form>
        </>
      ) : (
        <p>{t(locale, 'inbox.link.disabled')}</p>
      )}
    </section>
  );
}

function DeliveryRow({ locale, delivery: d }: { locale: Locale; delivery: DeliverySummary }) {
  const isNew = d.state === 'delivered' && !d.viewedByMe;
  const state = d.state === 'rejected' ? 'rejected' : isNew ? 'new' : 'opened';
  return (
    <tr className={isNew ? 'delivery-new' : undefined} data-testid="delivery-row" data-state={state}>
      {/* The subject links to the delivery: a plain link, so nothing prefetches it and counts as a view. */}
      <th scope="row" className="delivery-subject">
        <a href={`/inbox/deliveries/${d.id}`}>
          {d.subject === null ? t(locale, 'delivery.unreadable') : d.subject || t(locale, 'delivery.noSubject')}
        </a>
        <span className="subtle mono">{d.reference}</span>
      </th>
      <td className="delivery-sender">
        <SenderAddress locale={locale} email={d.senderEmail} verified={d.senderVerified} />
      </td>
      <td className="nowrap">
        <Time locale={locale} date={d.receivedAt} />
      </td>
      <td className="nowrap">
        {formatNumber(locale, d.fileCount)}
        {d.totalBytes !== null && <span className="subtle">{formatBytes(locale, d.totalBytes)}</span>}
      </td>
      <td>
        <span className={`status status-${state}`}>{t(locale, `delivery.state.${state}`)}</span>
      </td>
      <td>
        {d.downloadedBy.length === 0 ? (
          <span className="subtle">{t(locale, 'inbox.downloadedBy.none')}</span>
        ) : (
          <ul className="plain-list">
            {d.downloadedBy.map((h) => (
              <li key={h.email}>{h.name}</li>
            ))}
          </ul>
        )}
      </td>
    </tr>
  );
}
