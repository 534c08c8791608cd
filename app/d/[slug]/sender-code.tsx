'use client';
import { useEffect, useRef, useState, type FormEvent } from 'react';
import { t, type Locale, type PlainMessageKey } from '@/lib/i18n';
import { ApiError, requestSenderCode, verifySenderCode } from './api';
import { problemOf } from './delivery-upload';
import { problemMessage } from './messages';

const CODE_DIGITS = 6;

/** What a refused code means for the sender, in the page's language. */
function codeProblem(locale: Locale, err: unknown): string {
  if (err instanceof ApiError && err.code === 'code-wrong') {
    return t(locale, 'verify.error.wrong', { count: err.attemptsLeft ?? 0 });
  }
  const context: PlainMessageKey = 'ratelimit.checks';
  return problemMessage(locale, problemOf(err), context);
}

/**
 * The code step of a mailbox that accepts only confirmed senders: shown after the form is
 * filled in and a code has been mailed, before anything is created or uploaded. The form stays
 * in the page behind it, so going back to change the address loses nothing.
 */
export function SenderCode({
  locale,
  slug,
  email,
  reason,
  onVerified,
  onBack,
  announce,
}: {
  locale: Locale;
  slug: string;
  email: string;
  /** Why the code is asked again (the earlier confirmation ran out, or was for another address). */
  reason?: PlainMessageKey;
  /** Called once the server has bound the address to this browser; sending starts there. */
  onVerified: () => Promise<void>;
  onBack: () => void;
  announce: (message: string) => void;
}) {
  const [code, setCode] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [busy, setBusy] = useState<'checking' | 'requesting' | null>(null);
  const heading = useRef<HTMLHeadingElement>(null);
  const input = useRef<HTMLInputElement>(null);

  useEffect(() => {
    heading.current?.focus();
  }, []);

  const fail = (message: string) => {
    setError(message);
    announce(message);
    input.current?.focus();
  };

  const submit = async (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    const digits = code.replace(/[\s-]/g, '');
    if (!digits) return fail(t(locale, 'verify.error.required'));
    if (!new RegExp(`^[0-9]{${CODE_DIGITS}}$`).test(digits)) return fail(t(locale, 'verify.error.format'));
    setError(null);
    setNotice(null);
    setBusy('checking');
    try {
      await verifySenderCode({ slug, email, code: digits });
    } catch (err) {
      setBusy(null);
      return fail(codeProblem(locale, err));
    }
    announce(t(locale, 'verify.verified', { email }));
    try {
      await onVerified();
    } finally {
      setBusy(null);
    }
  };

  const resend = async () => {
    setError(null);
    setNotice(null);
    setBusy('requesting');
    try {
      await requestSenderCode({ slug, email, locale });
      const sent = t(locale, 'verify.resent', { email });
      setNotice(sent);
      announce(sent);
      setCode('');
      input.current?.focus();
    } catch (err) {
      fail(problemMessage(locale, problemOf(err), 'ratelimit.codes'));
    } finally {
      setBusy(null);
    }
  };

  const describedBy = ['sender-code-hint', error && 'sender-code-error'].filter(Boolean).join(' ');

  return (
    <section className="card" aria-labelledby="sender-code-title" data-testid="sender-code">
      <h2 id="sender-code-title" ref={heading} tabIndex={-1}>
        {t(locale, 'verify.title')}
      </h2>
      {reason && <p className="notice notice-error">{t(locale, reason)}</p>}
      <p>{t(locale, 'verify.lead', { email })}</p>
      {notice && <p className="notice notice-success">{notice}</p>}
      <form noValidate onSubmit={submit}>
        <div className={error ? 'field field-invalid' : 'field'}>
          <label className="label" htmlFor="sender-code">
            {t(locale, 'verify.code.label')}
          </label>
          <span className="hint" id="sender-code-hint">
            {t(locale, 'verify.code.hint')}
          </span>
          {error && (
            <span className="field-error" id="sender-code-error">
              {error}
            </span>
          )}
          <input
            ref={input}
            className="input input-code"
            id="sender-code"
            name="code"
            type="text"
            inputMode="numeric"
            autoComplete="one-time-code"
            spellCheck={false}
            maxLength={CODE_DIGITS + 2}
            required
            aria-invalid={error ? true : undefined}
            aria-describedby={describedBy}
            value={code}
            onChange={(e) => setCode(e.target.value)}
          />
        </div>
        <div className="actions">
          <button type="submit" className="button button-primary" disabled={busy !== null}>
            {t(locale, busy === 'checking' ? 'verify.checking' : 'verify.submit')}
          </button>
          <button type="button" className="button" onClick={resend} disabled={busy !== null}>
            {t(locale, busy === 'requesting' ? 'verify.requesting' : 'verify.resend')}
          </button>
          <button type="button" className="button button-quiet" onClick={onBack} disabled={busy !== null}>
            {t(locale, 'verify.changeEmail')}
          </button>
        </div>
      </form>
    </section>
  );
}
