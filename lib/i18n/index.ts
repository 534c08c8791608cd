/**
 * Translation and formatting, usable on the server and in the browser (no request APIs here:
 * the server-side locale lookup is in ./server).
 */
import { en, sv } from './messages';

export const locales = ['sv', 'en'] as const;
export type Locale = (typeof locales)[number];
export const defaultLocale: Locale = 'sv';
/** The cookie the language switch sets and the server reads. */
export const localeCookie = 'lang';

export type MessageKey = keyof typeof sv;

/** The {name} placeholders of a message template. */
type Placeholders<S extends string> = S extends `${string}{${infer P}}${infer Rest}` ? P | Placeholders<Rest> : never;
type ParamsOf<K extends MessageKey> = [Placeholders<(typeof sv)[K]>] extends [never]
  ? []
  : [params: Record<Placeholders<(typeof sv)[K]>, string | number>];
/** Keys of messages without placeholders: the ones a lookup table may choose among. */
export type PlainMessageKey = { [K in MessageKey]: ParamsOf<K> extends [] ? K : never }[MessageKey];

// A translation whose placeholders differ from the Swedish source fails to compile here.
type Disagreeing = {
  [K in MessageKey]: [Placeholders<(typeof sv)[K]>] extends [Placeholders<(typeof en)[K]>]
    ? [Placeholders<(typeof en)[K]>] extends [Placeholders<(typeof sv)[K]>]
      ? never
      : K
    : K;
}[MessageKey];
true satisfies [Disagreeing] extends [never] ? true : Disagreeing;

const catalogues: Record<Locale, Record<MessageKey, string>> = { sv, en };

export function isLocale(value: unknown): value is Locale {
  return typeof value === 'string' && (locales as readonly string[]).includes(value);
}

/** `?lang=` wins over the cookie (a link can choose the language), then the default. */
export function resolveLocale(query: unknown, cookie: unknown): Locale {
  const fromQuery = Array.isArray(query) ? query[0] : query;
  if (isLocale(fromQuery)) return fromQuery;
  if (isLocale(cookie)) return cookie;
  return defaultLocale;
}

/** Whether `key` is a message without placeholders: for keys built from a code at run time. */
export function isPlainMessageKey(key: string): key is PlainMessageKey {
  return Object.hasOwn(sv, key) && !/\{\w+\}/.test(sv[key as MessageKey]);
}

export function t<K extends MessageKey>(locale: Locale, key: K, ...params: ParamsOf<K>): string {
  const template: string = catalogues[locale][key];
  const values = params[0] as Record<string, string | number> | undefined;
  if (!values) return template;
  return template.replace(/\{(\w+)\}/g, (whole, name: string) =>
    name in values ? formatNumber(locale, values[name]) : whole,
  );
}

/** BCP 47 tags for Intl: Swedish as written in Sweden. */
const intlTag: Record<Locale, string> = { sv: 'sv-SE', en: 'en-GB' };

export function formatNumber(locale: Locale, value: string | number): string {
  return typeof value === 'number' ? new Intl.NumberFormat(intlTag[locale]).format(value) : value;
}

const byteUnits = ['byte', 'kilobyte', 'megabyte', 'gigabyte', 'terabyte'] as const;

/** Decimal units (1 MB = 10^6 bytes), as file managers and the size limits are written. */
export function formatBytes(locale: Locale, bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < byteUnits.length - 1) {
    value /= 1000;
    unit++;
  }
  return new Intl.NumberFormat(intlTag[locale], {
    style: 'unit',
    unit: byteUnits[unit],
    unitDisplay: unit === 0 ? 'long' : 'short',
    maximumFractionDigits: value < 10 && unit > 0 ? 1 : 0,
  }).format(value);
}

/** A rough, human duration ("3 minutes"): time-left estimates are never precise. */
export function formatDuration(locale: Locale, seconds: number): string {
  const [value, unit] =
    seconds < 60
      ? [Math.max(1, Math.ceil(seconds / 5) * 5), 'second']
      : seconds < 3600
        ? [Math.ceil(seconds / 60), 'minute']
        : [Math.round((seconds / 3600) * 10) / 10, 'hour'];
  return new Intl.NumberFormat(intlTag[locale], { style: 'unit', unit, unitDisplay: 'long' }).format(value);
}

export function formatDateTime(locale: Locale, date: Date): string {
  return new Intl.DateTimeFormat(intlTag[locale], { dateStyle: 'long', timeStyle: 'short' }).format(date);
}
