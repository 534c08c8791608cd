import { switchLocale } from './actions';
import { t, type Locale } from './index';

/** Offers the other language; a form so that it also works before the page's script has loaded. */
export function LanguageSwitch({ locale }: { locale: Locale }) {
  const other: Locale = locale === 'sv' ? 'en' : 'sv';
  return (
    <form action={switchLocale} className="language-switch">
      <input type="hidden" name="lang" value={other} />
      <button type="submit" className="button button-quiet" lang={other}>
        {t(locale, 'site.switchTo')}
      </button>
    </form>
  );
}
