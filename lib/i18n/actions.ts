'use server';
import { cookies } from 'next/headers';
import { isLocale, localeCookie } from './index';

/**
 * The language switch's form action. Setting the cookie in a Server Action re-renders the current
 * page in the same round trip without unmounting it, so an upload in progress carries on.
 */
export async function switchLocale(formData: FormData): Promise<void> {
  const locale = formData.get('lang');
  if (!isLocale(locale)) return;
  (await cookies()).set(localeCookie, locale, {
    path: '/',
    sameSite: 'lax',
    httpOnly: true,
    maxAge: 365 * 24 * 3600,
  });
}
