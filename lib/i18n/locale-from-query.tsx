'use client';
import { usePathname, useRouter } from 'next/navigation';
import { useEffect } from 'react';
import { switchLocale } from './actions';
import type { Locale } from './index';

/**
 * Rendered by a page that was opened with `?lang=`: stores the choice in the cookie (so the layout,
 * which cannot read the query, and later pages agree) and drops `lang` from the address, so that
 * the language switch is not overruled by it afterwards.
 */
export function LocaleFromQuery({ locale }: { locale: Locale }) {
  const router = useRouter();
  const pathname = usePathname();
  useEffect(() => {
    const form = new FormData();
    form.set('lang', locale);
    void switchLocale(form).then(() => {
      const params = new URLSearchParams(window.location.search);
      params.delete('lang');
      const query = params.toString();
      router.replace(query ? `${pathname}?${query}` : pathname, { scroll: false });
    });
  }, [locale, pathname, router]);
  return null;
}
