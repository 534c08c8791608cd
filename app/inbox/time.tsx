import type { Locale } from '@/lib/i18n';

// Handlers and senders are in Sweden: times read as Swedish wall-clock time whatever the server's zone.
const formats: Record<Locale, Intl.DateTimeFormat> = {
  sv: new Intl.DateTimeFormat('sv-SE', { dateStyle: 'medium', timeStyle: 'short', timeZone: 'Europe/Stockholm' }),
  en: new Intl.DateTimeFormat('en-GB', { dateStyle: 'medium', timeStyle: 'short', timeZone: 'Europe/Stockholm' }),
};

export function Time({ locale, date }: { locale: Locale; date: Date }) {
  return <time dateTime={date.toISOString()}>{formats[locale].format(date)}</time>;
}
