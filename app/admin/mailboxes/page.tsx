import type { Metadata } from 'next';
import { AdminNotice } from '@/app/admin/notice';
import { AccountBar } from '@/app/inbox/account-bar';
import { listMailboxesForAdmin } from '@/lib/admin/mailboxes';
import { requireAdmin } from '@/lib/auth';
import { formatNumber, isLocale, t } from '@/lib/i18n';
import { LocaleFromQuery } from '@/lib/i18n/locale-from-query';
import { requestLocale } from '@/lib/i18n/server';

type SearchParams = Promise<Record<string, string | string[] | undefined>>;

const PATH = '/admin/mailboxes';

export async function generateMetadata({ searchParams }: { searchParams: SearchParams }): Promise<Metadata> {
  return { title: t(await requestLocale(searchParams), 'admin.mailboxes.title') };
}

/** Every mailbox at a glance, and the form that creates a shared one. */
export default async function MailboxesPage({ searchParams }: { searchParams: SearchParams }) {
  const params = await searchParams;
  const user = await requireAdmin(PATH);
  const locale = await requestLocale(searchParams);
  const mailboxes = await listMailboxesForAdmin();

  return (
    <>
      {isLocale(params.lang) && <LocaleFromQuery locale={locale} />}
      <AccountBar locale={locale} user={user} current="mailboxes" />
      <h1>{t(locale, 'admin.mailboxes.title')}</h1>
      <p className="lead">{t(locale, 'admin.mailboxes.lead')}</p>
      <AdminNotice locale={locale} params={params} />

      <div className="table-wrap">
        <table className="data-table">
          <caption>{t(locale, 'admin.mailboxes.caption')}</caption>
          <thead>
            <tr>
              <th scope="col">{t(locale, 'admin.mailboxes.column.name')}</th>
              <th scope="col">{t(locale, 'admin.mailboxes.column.kind')}</th>
              <th scope="col">{t(locale, 'admin.mailboxes.column.functionalEmail')}</th>
              <th scope="col">{t(locale, 'admin.mailboxes.column.link')}</th>
              <th scope="col">{t(locale, 'admin.mailboxes.column.members')}</th>
              <th scope="col">{t(locale, 'admin.mailboxes.column.deliveries')}</th>
            </tr>
          </thead>
          <tbody>
            {mailboxes.map((m) => (
              <tr key={m.id} data-testid="mailbox-row">
                <th scope="row">
                  <a href={`${PATH}/${m.id}`}>{m.name}</a>
                </th>
                <td>{t(locale, m.kind === 'shared' ? 'admin.mailboxes.kind.shared' : 'admin.mailboxes.kind.personal')}</td>
                <td className="break-word">
                  {m.functionalEmail ?? <span className="subtle-inline">{t(locale, 'admin.mailboxes.noAddress')}</span>}
                </td>
                <td>
                  <span className={`status ${m.linkEnabled ? 'status-done' : 'status-failed'}`}>
                    {t(locale, m.linkEnabled ? 'admin.mailboxes.link.on' : 'admin.mailboxes.link.off')}
                  </span>
                </td>
                <td>{formatNumber(locale, m.memberCount)}</td>
                <td>{formatNumber(locale, m.deliveryCount)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>

      <section className="card admin-mailbox-form" aria-labelledby="create-mailbox-heading">
        <h2 id="create-mailbox-heading">{t(locale, 'admin.mailboxes.create.heading')}</h2>
        <form method="post" action="/api/admin/mailboxes">
          <input type="hidden" name="back" value={PATH} />
          <div className="field">
            <label className="label" htmlFor="mailbox-name">
              {t(locale, 'admin.mailboxes.create.name')}
            </label>
            <input className="input" id="mailbox-name" name="name" required maxLength={200} autoComplete="off" />
          </div>
          <div className="field">
            <label className="label" htmlFor="mailbox-email">
              {t(locale, 'admin.mailboxes.create.functionalEmail')}
            </label>
            <span className="hint" id="mailbox-email-hint">
              {t(locale, 'admin.mailboxes.create.functionalEmailHint')}
            </span>
            <input
              className="input"
              id="mailbox-email"
              name="functionalEmail"
              type="email"
              maxLength={254}
              autoComplete="off"
              aria-describedby="mailbox-email-hint"
            />
          </div>
          <button type="submit" className="button button-primary">
            {t(locale, 'admin.mailboxes.create.submit')}
          </button>
        </form>
      </section>
    </>
  );
}
