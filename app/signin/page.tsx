import type { Metadata } from 'next';
import { redirect } from 'next/navigation';
import { getCurrentUser, oidcEnabled, safeNextPath, SIGN_IN_LINK_TTL_MS, type LinkProblem, type OidcProblem } from '@/lib/auth';
import { isLocale, t, type Locale, type PlainMessageKey } from '@/lib/i18n';
import { LocaleFromQuery } from '@/lib/i18n/locale-from-query';
import { requestLocale } from '@/lib/i18n/server';
import { retryAfterMessage } from '@/lib/ratelimit/messages';
import { SignInForm, type EmailError } from './sign-in-form';

type SearchParams = Promise<Record<string, string | string[] | undefined>>;

type Problem = LinkProblem | OidcProblem;

const problemKeys: Record<Problem, { title: PlainMessageKey; body: PlainMessageKey | 'signin.problem.linkExpired.body' }> = {
  'link-used': { title: 'signin.problem.linkUsed.title', body: 'signin.problem.linkUsed.body' },
  'link-expired': { title: 'signin.problem.linkExpired.title', body: 'signin.problem.linkExpired.body' },
  'link-invalid': { title: 'signin.problem.linkInvalid.title', body: 'signin.problem.linkInvalid.body' },
  'no-access': { title: 'signin.problem.noAccess.title', body: 'signin.problem.noAccess.body' },
  'oidc-unverified': { title: 'signin.problem.unverified.title', body: 'signin.problem.unverified.body' },
  'oidc-failed': { title: 'signin.problem.oidcFailed.title', body: 'signin.problem.oidcFailed.body' },
};

const minutes = SIGN_IN_LINK_TTL_MS / 60_000;

/** What the query asks the page to show: where verify, the OIDC callback and the form send people. */
async function pageState(searchParams: SearchParams) {
  const q = await searchParams;
  const one = (name: string) => (Array.isArray(q[name]) ? q[name][0] : q[name]);
  const problem = one('problem');
  const error = one('error');
  return {
    next: safeNextPath(one('next')),
    sent: one('sent') === '1',
    signedOut: one('signed-out') === '1',
    limitedFor: Number(one('limited')) || undefined,
    problem: problem && problem in problemKeys ? (problem as Problem) : undefined,
    error: error === 'email-required' || error === 'email-invalid' ? (error as EmailError) : undefined,
    lang: q.lang,
  };
}

export async function generateMetadata({ searchParams }: { searchParams: SearchParams }): Promise<Metadata> {
  const locale = await requestLocale(searchParams);
  const s = await pageState(searchParams);
  const title = s.sent ? 'signin.sent.title' : s.problem ? problemKeys[s.problem].title : 'signin.metaTitle';
  return { title: t(locale, title) };
}

function problemBody(locale: Locale, problem: Problem): string {
  const key = problemKeys[problem].body;
  return key === 'signin.problem.linkExpired.body' ? t(locale, key, { minutes }) : t(locale, key);
}

export default async function SignInPage({ searchParams }: { searchParams: SearchParams }) {
  const s = await pageState(searchParams);
  // Already in (a second click on a spent link lands here too): straight on.
  if (await getCurrentUser()) redirect(s.next);
  const locale = await requestLocale(searchParams);
  const again = `/signin?${new URLSearchParams({ next: s.next })}`;

  if (s.sent) {
    return (
      <>
        {isLocale(s.lang) && <LocaleFromQuery locale={locale} />}
        <h1>{t(locale, 'signin.sent.title')}</h1>
        <p className="lead">{t(locale, 'signin.sent.body', { minutes })}</p>
        <p>{t(locale, 'signin.sent.noMail')}</p>
        <p>
          <a href={again}>{t(locale, 'signin.sent.again')}</a>
        </p>
      </>
    );
  }

  const oidc = oidcEnabled() && (
    <section className="card" aria-labelledby="signin-oidc-title">
      <h2 id="signin-oidc-title">{t(locale, 'signin.oidc.title')}</h2>
      <p>{t(locale, 'signin.oidc.explain')}</p>
      <a className="button button-primary" href={`/auth/oidc/start?${new URLSearchParams({ next: s.next })}`}>
        {t(locale, 'signin.oidc.button')}
      </a>
    </section>
  );
  const linkProblem = s.problem?.startsWith('link-');

  return (
    <>
      {isLocale(s.lang) && <LocaleFromQuery locale={locale} />}
      {s.problem ? (
        <>
          <h1>{t(locale, problemKeys[s.problem].title)}</h1>
          <p className="lead">{problemBody(locale, s.problem)}</p>
        </>
      ) : (
        <>
          <h1>{t(locale, 'signin.title')}</h1>
          <p className="lead">{t(locale, 'signin.lead')}</p>
        </>
      )}
      {s.limitedFor && (
        <div className="notice notice-error" role="alert">
          <p>
            {t(locale, 'ratelimit.signIn')} {retryAfterMessage(locale, s.limitedFor)}
          </p>
        </div>
      )}
      {s.signedOut && !s.problem && (
        <div className="notice notice-success">
          <p>{t(locale, 'signin.signedOut')}</p>
        </div>
      )}
      {!linkProblem && oidc}
      <section className="card" aria-labelledby="signin-email-title">
        <h2 id="signin-email-title">{t(locale, linkProblem ? 'signin.email.titleAgain' : 'signin.email.title')}</h2>
        <p>{t(locale, 'signin.email.explain', { minutes })}</p>
        <SignInForm locale={locale} next={s.next} initialError={s.error} />
      </section>
      {linkProblem && oidc}
    </>
  );
}
