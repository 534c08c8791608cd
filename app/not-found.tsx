import type { Metadata } from 'next';
import { t } from '@/lib/i18n';
import { requestLocale } from '@/lib/i18n/server';

export async function generateMetadata(): Promise<Metadata> {
  return { title: t(await requestLocale(), 'notFound.title') };
}

/** Also what an unknown or disabled filedrop link shows: the two must look the same. */
export default async function NotFound() {
  const locale = await requestLocale();
  return (
    <>
      <h1>{t(locale, 'notFound.title')}</h1>
      <p className="lead">{t(locale, 'notFound.body')}</p>
      <p>
        <a href="/">{t(locale, 'notFound.home')}</a>
      </p>
    </>
  );
}
