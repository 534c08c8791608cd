import type { Metadata } from 'next';
import { t } from '@/lib/i18n';
import { requestLocale } from '@/lib/i18n/server';

export async function generateMetadata(): Promise<Metadata> {
  return { title: t(await requestLocale(), 'admin.forbidden.title') };
}

/** What a signed-in user who is not an administrator sees on an admin page, with status 403. */
export default async function Forbidden() {
  const locale = await requestLocale();
  return (
    <>
      <h1>{t(locale, 'admin.forbidden.title')}</h1>
      <p className="lead">{t(locale, 'admin.forbidden.body')}</p>
      <p>
        <a href="/inbox">{t(locale, 'admin.forbidden.inbox')}</a>
      </p>
    </>
  );
}
