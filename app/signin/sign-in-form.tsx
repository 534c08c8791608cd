'use client';
import { useRef, useState, type FormEvent } from 'react';
import { t, type Locale } from '@/lib/i18n';

export type EmailError = 'email-required' | 'email-invalid';

const errorKeys = { 'email-required': 'signin.error.emailRequired', 'email-invalid': 'signin.error.emailInvalid' } as const;

/**
 * A plain form post to /api/auth/sign-in, so it works before (or without) the script; the
 * script only catches an empty or malformed address before the round trip.
 */
export function SignInForm({ locale, next, initialError }: { locale: Locale; next: string; initialError?: EmailError }) {
  const [error, setError] = useState<EmailError | undefined>(initialError);
  const input = useRef<HTMLInputElement>(null);

  const check = (event: FormEvent<HTMLFormElement>) => {
    const value = input.current?.value.trim() ?? '';
    const problem = !value ? 'email-required' : /^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(value) ? undefined : 'email-invalid';
    setError(problem);
    if (problem) {
      event.preventDefault();
      input.current?.focus();
    }
  };

  return (
    <form method="post" action="/api/auth/sign-in" noValidate onSubmit={check}>
      <input type="hidden" name="next" value={next} />
      <div className={error ? 'field field-invalid' : 'field'}>
        <label className="label" htmlFor="signin-email">
          {t(locale, 'signin.email.label')}
        </label>
        <span className="hint" id="signin-email-hint">
          {t(locale, 'signin.email.hint')}
        </span>
        {error && (
          <span className="field-error" id="signin-email-error" role="alert">
            {t(locale, errorKeys[error])}
          </span>
        )}
        <input
          ref={input}
          className="input"
          id="signin-email"
          name="email"
          type="email"
          autoComplete="email"
          spellCheck={false}
          autoFocus={initialError !== undefined}
          aria-invalid={error ? true : undefined}
          aria-describedby={error ? 'signin-email-hint signin-email-error' : 'signin-email-hint'}
        />
      </div>
      <button type="submit" className="button button-primary">
        {t(locale, 'signin.email.submit')}
      </button>
    </form>
  );
}
