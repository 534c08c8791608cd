import type { Metadata } from 'next';
import { notFound } from 'next/navigation';
import { AdminNotice } from '@/app/admin/notice';
import { FiledropLinkField } from '@/app/filedrop-link-field';
import { AccountBar } from '@/app/inbox/account-bar';
import { Time } from '@/app/inbox/time';
import { MIN_PASSPHRASE_LENGTH } from '@/lib/admin';
import { mailboxDetail, MAX_POLICY_GB } from '@/lib/admin/mailboxes';
import { getCurrentUser, requireAdmin } from '@/lib/auth';
import { isLocale, t } from '@/lib/i18n';
import { LocaleFromQuery } from '@/lib/i18n/locale-from-query';
import { requestLocale } from '@/lib/i18n/server';
import { filedropUrl } from '@/lib/mailboxes';

type Params = Promise<{ id: string }>;
type SearchParams = Promise<Record<string, string | string[] | undefined>>;

export async function generateMetadata({ params, searchParams }: { params: Params; searchParams: SearchParams }): Promise<Metadata> {
  const locale = await requestLocale(searchParams);
  // Metadata renders even when the page answers 403: the mailbox's name is for administrators only.
  if ((await getCurrentUser())?.role !== 'admin') return { title: t(locale, 'admin.mailboxes.title') };
  const detail = await mailboxDetail((await params).id);
  return { title: detail ? t(locale, 'admin.mailbox.title', { mailbox: detail.mailbox.name }) : t(locale, 'admin.mailboxes.title') };
}

/** One mailbox: its filedrop link, members, policy and keys, each with the forms that change them. */
export default async function MailboxPage({ params, searchParams }: { params: Params; searchParams: SearchParams }) {
  const { id } = await params;
  const query = await searchParams;
  const path = `/admin/mailboxes/${encodeURIComponent(id)}`;
  const user = await requireAdmin(path);
  const locale = await requestLocale(searchParams);
  const detail = await mailboxDetail(id);
  if (!detail) notFound();
  const { mailbox: m, members, keys } = detail;
  const api = `/api/admin/mailboxes/${m.id}`;
  const name = m.name;
  const link = filedropUrl(m.filedrop_slug);
  const back = <input type="hidden" name="back" value={path} />;
  const linkForm = (action: 'rotate' | 'disable' | 'enable', label: string, className: string) => (
    <form method="post" action={`${api}/link`}>
      {back}
      <input type="hidden" name="action" value={action} />
      <button type="submit" className={`button ${className}`}>
        {label}
      </button>
    </form>
  );

  return (
    <>
      {isLocale(query.lang) && <LocaleFromQuery locale={locale} />}
      <AccountBar locale={locale} user={user} current="mailboxes" />
      <p>
        <a href="/admin/mailboxes">{t(locale, 'admin.mailbox.back')}</a>
      </p>
      <h1>{t(locale, 'admin.mailbox.title', { mailbox: name })}</h1>
      <dl className="facts">
        <dt>{t(locale, 'admin.mailboxes.column.kind')}</dt>
        <dd>{t(locale, m.kind === 'shared' ? 'admin.mailboxes.kind.shared' : 'admin.mailboxes.kind.personal')}</dd>
        <dt>{t(locale, 'admin.mailboxes.column.functionalEmail')}</dt>
        <dd>{m.functional_email ?? t(locale, 'admin.mailboxes.noAddress')}</dd>
      </dl>
      <AdminNotice locale={locale} params={query} />

      <section className="card" aria-labelledby="link-heading">
        <h2 id="link-heading">{t(locale, 'admin.mailbox.link.heading')}</h2>
        <p>
          <span className={`status ${m.filedrop_enabled ? 'status-done' : 'status-failed'}`}>
            {t(locale, m.filedrop_enabled ? 'admin.mailboxes.link.on' : 'admin.mailboxes.link.off')}
          </span>{' '}
          {t(locale, m.filedrop_enabled ? 'admin.mailbox.link.enabled' : 'admin.mailbox.link.disabled')}
        </p>
        <div className="field">
          <FiledropLinkField
            id="filedrop-link"
            testId="filedrop-link"
            label={t(locale, 'admin.mailbox.link.label')}
            link={link}
            texts={{
              label: t(locale, 'admin.mailbox.link.copy'),
              name: t(locale, 'admin.mailbox.link.copyNamed', { mailbox: name }),
              copied: t(locale, 'admin.mailbox.link.copied'),
              failed: t(locale, 'admin.mailbox.link.copyFailed'),
            }}
          />
        </div>
        <p className="notice notice-warning" id="link-warning">
          {t(locale, 'admin.mailbox.link.warning')}
        </p>
        <div className="actions">
          {linkForm('rotate', t(locale, 'admin.mailbox.link.rotate', { mailbox: name }), 'button-danger')}
          {m.filedrop_enabled
            ? linkForm('disable', t(locale, 'admin.mailbox.link.disable', { mailbox: name }), 'button-quiet')
            : linkForm('enable', t(locale, 'admin.mailbox.link.enable', { mailbox: name }), 'button-primary')}
        </div>
      </section>

      <section className="card" aria-labelledby="members-heading">
        <h2 id="members-heading">{t(locale, 'admin.mailbox.members.heading')}</h2>
        {m.kind === 'personal' && <p>{t(locale, 'admin.mailbox.members.personal')}</p>}
        {members.length === 0 ? (
          <p>{t(locale, 'admin.mailbox.members.none')}</p>
        ) : (
          <div className="table-wrap">
            <table className="data-table">
              <caption>{t(locale, 'admin.mailbox.members.caption', { mailbox: name })}</caption>
              <thead>
                <tr>
                  <th scope="col">{t(locale, 'admin.mailbox.members.column.name')}</th>
                  <th scope="col">{t(locale, 'admin.mailbox.members.column.email')}</th>
                  <th scope="col">{t(locale, 'admin.mailbox.members.column.role')}</th>
                  <th scope="col">{t(locale, 'admin.mailbox.members.column.state')}</th>
                  {m.kind === 'shared' && <th scope="col">{t(locale, 'admin.mailbox.members.column.action')}</th>}
                </tr>
              </thead>
              <tbody>
                {members.map((member) => (
                  <tr key={member.userId} data-testid="member-row">
                    <th scope="row">{member.name}</th>
                    <td className="break-word">{member.email}</td>
                    <td>{t(locale, `admin.mailbox.members.role.${member.role}`)}</td>
                    <td>
                      <span className={`status ${member.disabled ? 'status-failed' : 'status-done'}`}>
                        {t(locale, member.disabled ? 'admin.mailbox.members.disabled' : 'admin.mailbox.members.active')}
                      </span>
                    </td>
                    {m.kind === 'shared' && (
                      <td>
                        <form method="post" action={`${api}/members/${member.userId}/remove`}>
                          {back}
                          <button type="submit" className="button button-quiet button-small">
                            {t(locale, 'admin.mailbox.members.remove', { name: member.name, mailbox: name })}
                          </button>
                        </form>
                      </td>
                    )}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
        {m.kind === 'shared' && (
          <form method="post" action={`${api}/members`} className="admin-inline-form" aria-labelledby="add-member-heading">
            <h3 id="add-member-heading">{t(locale, 'admin.mailbox.members.add.heading')}</h3>
            {back}
            <div className="field">
              <label className="label" htmlFor="member-email">
                {t(locale, 'admin.mailbox.members.add.email')}
              </label>
              <input className="input" id="member-email" name="email" type="email" required maxLength={254} autoComplete="off" />
            </div>
            <div className="field">
              <label className="label" htmlFor="member-role">
                {t(locale, 'admin.mailbox.members.add.role')}
              </label>
              <select className="input" id="member-role" name="role" defaultValue="handler">
                <option value="handler">{t(locale, 'admin.mailbox.members.role.handler')}</option>
                <option value="manager">{t(locale, 'admin.mailbox.members.role.manager')}</option>
              </select>
            </div>
            <button type="submit" className="button button-primary">
              {t(locale, 'admin.mailbox.members.add.submit', { mailbox: name })}
            </button>
          </form>
        )}
      </section>

      <section className="card" aria-labelledby="policy-heading">
        <h2 id="policy-heading">{t(locale, 'admin.mailbox.policy.heading')}</h2>
        <p>{t(locale, 'admin.mailbox.policy.lead')}</p>
        <form method="post" action={`${api}/policy`}>
          {back}
          <div className="field checkbox-field">
            <input
              type="checkbox"
              id="policy-verified"
              name="requireVerifiedSender"
              defaultChecked={m.require_verified_sender}
            />
            <label htmlFor="policy-verified">{t(locale, 'admin.mailbox.policy.requireVerifiedSender')}</label>
          </div>
          <div className="admin-policy-fields">
            <div className="field">
              <label className="label" htmlFor="policy-gb">
                {t(locale, 'admin.mailbox.policy.maxDeliveryGB')}
              </label>
              <input
                className="input"
                id="policy-gb"
                name="maxDeliveryGB"
                inputMode="decimal"
                required
                pattern={`[0-9]+([.,][0-9]+)?`}
                title={`0,001–${MAX_POLICY_GB}`}
                defaultValue={String(Number(m.max_delivery_bytes) / 1_000_000_000).replace('.', locale === 'sv' ? ',' : '.')}
              />
            </div>
            <div className="field">
              <label className="label" htmlFor="policy-files">
                {t(locale, 'admin.mailbox.policy.maxFiles')}
              </label>
              <input className="input" id="policy-files" name="maxFiles" type="number" required min={1} max={10000} step={1} defaultValue={m.max_files_per_delivery} />
            </div>
            <div className="field">
              <label className="label" htmlFor="policy-days">
                {t(locale, 'admin.mailbox.policy.retentionDays')}
              </label>
              <input className="input" id="policy-days" name="retentionDays" type="number" required min={1} max={3650} step={1} defaultValue={m.retention_days} />
            </div>
          </div>
          <button type="submit" className="button button-primary">
            {t(locale, 'admin.mailbox.policy.submit', { mailbox: name })}
          </button>
        </form>
      </section>

      <section className="card" aria-labelledby="keys-heading">
        <h2 id="keys-heading">{t(locale, 'admin.mailbox.keys.heading')}</h2>
        <div className="table-wrap">
          <table className="data-table">
            <caption>{t(locale, 'admin.mailbox.keys.caption', { mailbox: name })}</caption>
            <thead>
              <tr>
                <th scope="col">{t(locale, 'admin.mailbox.keys.column.fingerprint')}</th>
                <th scope="col">{t(locale, 'admin.mailbox.keys.column.created')}</th>
                <th scope="col">{t(locale, 'admin.mailbox.keys.column.state')}</th>
              </tr>
            </thead>
            <tbody>
              {keys.map((k) => (
                <tr key={k.fingerprint} data-testid="key-row">
                  <th scope="row" className="mono break-word">
                    {k.fingerprint}
                  </th>
                  <td className="nowrap">
                    <Time locale={locale} date={k.createdAt} />
                  </td>
                  <td>
                    <span className={k.active ? 'status status-done' : 'status'}>
                      {t(locale, k.active ? 'admin.mailbox.keys.active' : 'admin.mailbox.keys.inactive')}
                    </span>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
        <p>{t(locale, 'admin.mailbox.keys.rotateLead')}</p>
        <form method="post" action={`${api}/key/rotate`}>
          {back}
          <button type="submit" className="button button-quiet">
            {t(locale, 'admin.mailbox.keys.rotate', { mailbox: name })}
          </button>
        </form>

        <form method="post" action={`${api}/key/export`} className="admin-inline-form" aria-labelledby="export-heading">
          <h3 id="export-heading">{t(locale, 'admin.mailbox.keys.export.heading')}</h3>
          <p>{t(locale, 'admin.mailbox.keys.export.lead')}</p>
          {back}
          <div className="field">
            <label className="label" htmlFor="export-passphrase">
              {t(locale, 'admin.mailbox.keys.export.passphrase', { min: MIN_PASSPHRASE_LENGTH })}
            </label>
            <input className="input" id="export-passphrase" name="passphrase" type="password" required minLength={MIN_PASSPHRASE_LENGTH} autoComplete="new-password" />
          </div>
          <div className="field">
            <label className="label" htmlFor="export-confirmation">
              {t(locale, 'admin.mailbox.keys.export.confirmation')}
            </label>
            <input className="input" id="export-confirmation" name="passphraseConfirmation" type="password" required minLength={MIN_PASSPHRASE_LENGTH} autoComplete="new-password" />
          </div>
          <button type="submit" className="button button-quiet">
            {t(locale, 'admin.mailbox.keys.export.submit', { mailbox: name })}
          </button>
        </form>
      </section>
    </>
  );
}
