import { isLocale, t } from '@/lib/i18n';
import { LocaleFromQuery } from '@/lib/i18n/locale-from-query';
import { requestLocale } from '@/lib/i18n/server';

type SearchParams = Promise<Record<string, string | string[] | undefined>>;

export default async function LandingPage({ searchParams }: { searchParams: SearchParams }) {
  const locale = await requestLocale(searchParams);
  return (
    <>
      {isLocale((await searchParams).lang) && <LocaleFromQuery locale={locale} />}
      <h1>{t(locale, 'landing.title')}</h1>
      <p className="lead">{t(locale, 'landing.lead')}</p>
      <section className="card" aria-labelledby="how">
        <h2 id="how">{t(locale, 'landing.howTitle')}</h2>
        <ol className="steps">
          <li>{t(locale, 'landing.how1')}</li>
          <li>{t(locale, 'landing.how2')}</li>
          <li>{t(locale, 'landing.how3')}</li>
          <li>{t(locale, 'landing.how4')}</li>
        </ol>
      </section>
      <p>{t(locale, 'landing.noLink')}</p>
    </>
  );
}
