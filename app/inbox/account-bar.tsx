import { KeepSessionAlive } from '@/lib/auth/keep-alive';
import { t, type Locale } from '@/lib/i18n';
import type { User } from '@/lib/mailboxes';

export type AccountPage = 'inbox' | 'users' | 'mailboxes' | 'audit' | 'outbox';

const adminPages = [
  ['users', '/admin/users', 'inbox.nav.users'],
  ['mailboxes', '/admin/mailboxes', 'inbox.nav.mailboxes'],
  ['audit', '/admin/audit', 'inbox.nav.audit'],
  ['outbox', '/admin/outbox', 'inbox.nav.outbox'],
] as const;

/** Who is signed in, where they can go, and the way out: on top of every signed-in page. */
export function AccountBar({ locale, user, current }: { locale: Locale; user: User; current?: AccountPage }) {
  const here = (page: typeof current) => (page === current ? ('page' as const) : undefined);
  return (
    <div className="account-bar">
      <KeepSessionAlive />
      <nav aria-label={t(locale, 'inbox.nav.label')}>
        <ul className="account-nav">
          <li>
            <a href="/inbox" aria-current={here('inbox')}>
              {t(locale, 'inbox.nav.inbox')}
            </a>
          </li>
          {user.role === 'admin' &&
            adminPages.map(([page, href, label]) => (
              <li key={page}>
                <a href={href} aria-current={here(page)}>
                  {t(locale, label)}
                </a>
              </li>
            ))}
        </ul>
      </nav>
      <p className="account-user" data-testid="signed-in-user">
        {t(locale, 'inbox.account.signedInAs', { name: user.display_name })} <span className="subtle-inline">{user.email}</span>
      </p>
      <form method="post" action="/api/auth/sign-out">
        <button type="submit" className="button button-quiet button-small">
          {t(locale, 'inbox.account.signOut')}
        </button>
      </form>
    </div>
  );
}
