import { t, type Locale } from '@/lib/i18n';

/** A sender's address with whether it was verified, in words (never by colour alone). */
export function SenderAddress({ locale, email, verified }: { locale: Locale; email: string; verified: boolean }) {
  return (
    <>
      <span className="sender-email">{email}</span>{' '}
      <span className={verified ? 'status status-verified' : 'status status-unverified'}>
        {t(locale, verified ? 'delivery.sender.verified' : 'delivery.sender.unverified')}
      </span>
    </>
  );
}
