import { cookies } from 'next/headers';
import { localeCookie, resolveLocale, type Locale } from './index';

/**
 * The locale of this request: `?lang=` (pass the page's search params) over the `lang` cookie over
 * Swedish. Layouts cannot see the query, so they resolve from the cookie alone; the page's
 * LocaleFromQuery stores a `?lang=` choice in the cookie so both agree from then on.
 */
export async function requestLocale(searchParams?: Promise<Record<string, string | string[] | undefined>>): Promise<Locale> {
  const query = searchParams ? (await searchParams).lang : undefined;
  return resolveLocale(query, (await cookies()).get(localeCookie)?.value);
}
