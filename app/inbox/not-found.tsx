import { t } from '@/lib/i18n';
import { requestLocale } from '@/lib/i18n/server';

/** A delivery or mailbox the user may not see looks exactly like one that does not exist. */
export default async function InboxNotFound() {
  const locale = await requestLocale();
  return (
    <>
      <h1>{t(locale, 'inbox.notFound.title')}</h1>
      <p className="lead">{t(locale, 'inbox.notFound.body')}</p>
      <p>
        <a href="/inbox">{t(locale, 'inbox.notFound.back')}</a>
      </p>
    </>
  );
}
