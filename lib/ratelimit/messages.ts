/**
 * A rate limit's refusal in the page's language (browser and server alike: no Node here).
 * Pages say what was limited (`ratelimit.deliveries`, `ratelimit.signIn` …) and then this.
 */
import { t, type Locale } from '@/lib/i18n';

/** When to try again, from Retry-After in seconds: a minute, some minutes, or some hours. */
export function retryAfterMessage(locale: Locale, retryAfter: number | undefined): string {
  if (!retryAfter || !Number.isFinite(retryAfter) || retryAfter <= 0) return t(locale, 'error.429');
  if (retryAfter <= 90) return t(locale, 'ratelimit.retryMinute');
  if (retryAfter <= 90 * 60) return t(locale, 'ratelimit.retryMinutes', { minutes: Math.ceil(retryAfter / 60) });
  return t(locale, 'ratelimit.retryHours', { hours: Math.ceil(retryAfter / 3600) });
}
