import type { Metadata } from 'next';
import { AdminNotice } from '@/app/admin/notice';
import { AccountBar } from '@/app/inbox/account-bar';
import { Time } from '@/app/inbox/time';
import { listUsers, type ListedUser } from '@/lib/admin/users';
import { requireAdmin } from '@/lib/auth';
import { isLocale, t, type Locale } from '@/lib/i18n';
import { LocaleFromQuery } from '@/lib/i18n/locale-from-query';
import { requestLocale } from '@/lib/i18n/server';
import { filedropUrl, type User } from '@/lib/mailboxes';

type SearchParams = Promise<Record<string, string | string[] | undefined>>;

const PATH = '/admin/users';

export async function generateMetadata({ searchParams }: { searchParams: SearchParams }): Promise<Metadata> {
  return { title: t(await requestLocale(searchParams), 'admin.users.title') };
}

/** Every user with their role, state and filedrop link; per user the role and on/off; the invite form. */
export default async function UsersPage({ searchParams }: { searchParams: SearchParams }) {
  const params = await searchParams;
  const admin = await requireAdmin(PATH);
  const locale = await requestLocale(searchParams);
  const users = await listUsers();

  return (
    <>
      {isLocale(params.lang) && <LocaleFromQuery locale={locale} />}
      <AccountBar locale={locale} user={admin} current="users" />
      <h1>{t(locale, 'admin.users.title')}</h1>
      <p className="lead">{t(locale, 'admin.users.lead')}</p>
      <AdminNotice locale={locale} params={params} />

      <div className="table-wrap">
        <table className="data-table admin-users">
          <caption>{t(locale, 'admin.users.caption')}</caption>
          <thead>
            <tr>
              <th scope="col">{t(locale, 'admin.users.column.name')}</th>
              <th scope="col">{t(locale, 'admin.users.column.email')}</th>
              <th scope="col">{t(locale, 'admin.users.column.role')}</th>
              <th scope="col">{t(locale, 'admin.users.column.status')}</th>
              <th scope="col">{t(locale, 'admin.users.column.link')}</th>
              <th scope="col">{t(locale, 'admin.users.column.mailboxes')}</th>
              <th scope="col">{t(locale, 'admin.users.column.actions')}</th>
            </tr>
          </thead>
          <tbody>
            {users.map((u) => (
              <tr key={u.id} data-testid="user-row">
                <th scope="row">{u.display_name}</th>
                <td className="break-word">{u.email}</td>
                <td>{t(locale, `admin.users.role.${u.role}`)}</td>
                <td>
                  {u.disabled_at ? (
                    <>
                      <span className="status status-failed">{t(locale, 'admin.users.status.disabled')}</span>{' '}
                      <span className="subtle">
                        <Time locale={locale} date={u.disabled_at} />
                      </span>
                    </>
                  ) : (
                    <span className="status status-done">{t(locale, 'admin.users.status.enabled')}</span>
                  )}
                </td>
                <td className="break-word">
                  {u.filedrop_slug ? (
                    <a href={filedropUrl(u.filedrop_slug)}>{filedropUrl(u.filedrop_slug)}</a>
                  ) : (
                    <span className="subtle-inline">{t(locale, 'admin.users.noMailbox')}</span>
                  )}
                </td>
                <td>{t(locale, 'admin.users.mailboxes', { count: u.shared_mailboxes })}</td>
                <td>
                  {u.id === admin.id ? (
                    <span className="subtle-inline">{t(locale, 'admin.users.ownAccount')}</span>
                  ) : (
                    <UserActions locale={locale} user={u} />
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>

      <section className="card admin-user-invite" aria-labelledby="invite-user-heading">
        <h2 id="invite-user-heading">{t(locale, 'admin.users.invite.heading')}</h2>
        <p>{t(locale, 'admin.users.invite.lead')}</p>
        <form method="post" action="/api/admin/users">
          <input type="hidden" name="back" value={PATH} />
          <div className="field">
            <label className="label" htmlFor="invite-email">
              {t(locale, 'admin.users.invite.email')}
            </label>
            <input className="input" id="invite-email" name="email" type="email" required maxLength={254} autoComplete="off" />
          </div>
          <div className="field">
            <label className="label" htmlFor="invite-name">
              {t(locale, 'admin.users.invite.name')}
            </label>
            <input className="input" id="invite-name" name="displayName" required maxLength={200} autoComplete="off" />
          </div>
          <div className="field">
            <label className="label" htmlFor="invite-role">
              {t(locale, 'admin.users.invite.role')}
            </label>
            <RoleSelect locale={locale} id="invite-role" selected="handler" />
          </div>
          <div className="field">
            <label className="label" htmlFor="invite-locale">
              {t(locale, 'admin.users.invite.locale')}
            </label>
            <span className="hint" id="invite-locale-hint">
              {t(locale, 'admin.users.invite.localeHint')}
            </span>
            <select className="input" id="invite-locale" name="locale" defaultValue={locale} aria-describedby="invite-locale-hint">
              <option value="sv">{t(locale, 'admin.users.locale.sv')}</option>
              <option value="en">{t(locale, 'admin.users.locale.en')}</option>
            </select>
          </div>
          <button type="submit" className="button button-primary">
            {t(locale, 'admin.users.invite.submit')}
          </button>
        </form>
      </section>
    </>
  );
}

function RoleSelect({ locale, id, selected }: { locale: Locale; id: string; selected: User['role'] }) {
  return (
    <select className="input" id={id} name="role" defaultValue={selected}>
      <option value="handler">{t(locale, 'admin.users.role.handler')}</option>
      <option value="admin">{t(locale, 'admin.users.role.admin')}</option>
    </select>
  );
}

/** Change role, disable or enable: plain forms, each button naming the user it acts on. */
function UserActions({ locale, user }: { locale: Locale; user: ListedUser }) {
  const who = `${user.display_name} (${user.email})`;
  const base = `/api/admin/users/${encodeURIComponent(user.id)}`;
  return (
    <div className="user-actions">
      <form method="post" action={`${base}/role`} className="user-action">
        <input type="hidden" name="back" value={PATH} />
        <label className="visually-hidden" htmlFor={`role-${user.id}`}>
          {t(locale, 'admin.users.newRole', { user: who })}
        </label>
        <RoleSelect locale={locale} id={`role-${user.id}`} selected={user.role} />
        <button type="submit" className="button button-quiet button-small">
          {t(locale, 'admin.users.changeRole')} <span className="visually-hidden">{t(locale, 'admin.users.changeRoleOf', { user: who })}</span>
        </button>
      </form>
      <form method="post" action={`${base}/${user.disabled_at ? 'enable' : 'disable'}`} className="user-action">
        <input type="hidden" name="back" value={PATH} />
        <button type="submit" className={`button button-small ${user.disabled_at ? 'button-quiet' : 'button-danger'}`}>
          {t(locale, user.disabled_at ? 'admin.users.enable' : 'admin.users.disable')} <span className="visually-hidden">{who}</span>
        </button>
      </form>
    </div>
  );
}
