'use client';
import { useRef, useState, type FormEvent } from 'react';
import { formatBytes, t, type Locale } from '@/lib/i18n';
import { FileChooser } from './file-chooser';

const SUBJECT_MAX = 200;
// The manifest's limits (lib/crypto/manifest.ts).
const MESSAGE_MAX = 10_000;
const NAME_MAX_BYTES = 255;

export interface SenderInput {
  senderEmail: string;
  subject: string;
  message: string;
  files: File[];
}

type FieldName = 'senderEmail' | 'subject' | 'message' | 'files';
type Errors = Partial<Record<FieldName, string>>;

const fieldIds: Record<FieldName, string> = {
  senderEmail: 'sender-email',
  subject: 'subject',
  message: 'message',
  files: 'files',
};

function validate(locale: Locale, input: SenderInput, maxFiles: number, maxBytes: number): Errors {
  const errors: Errors = {};
  const email = input.senderEmail.trim();
  if (!email) errors.senderEmail = t(locale, 'form.error.emailRequired');
  else if (!/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email)) errors.senderEmail = t(locale, 'form.error.emailInvalid');
  if (!input.subject.trim()) errors.subject = t(locale, 'form.error.subjectRequired');
  else if (input.subject.length > SUBJECT_MAX) errors.subject = t(locale, 'form.error.subjectTooLong', { max: SUBJECT_MAX });
  if (input.message.length > MESSAGE_MAX) errors.message = t(locale, 'form.error.messageTooLong', { max: MESSAGE_MAX });
  const total = input.files.reduce((sum, f) => sum + f.size, 0);
  const longName = input.files.find((f) => new TextEncoder().encode(f.name).length > NAME_MAX_BYTES);
  if (!input.files.length) errors.files = t(locale, 'form.error.filesRequired');
  else if (longName) errors.files = t(locale, 'form.error.nameTooLong', { name: longName.name });
  else if (input.files.length > maxFiles) {
    errors.files = t(locale, 'form.error.tooManyFiles', { count: input.files.length, max: maxFiles });
  } else if (total > maxBytes) {
    errors.files = t(locale, 'form.error.tooLarge', { size: formatBytes(locale, total), max: formatBytes(locale, maxBytes) });
  }
  return errors;
}

/** The sender's details and files, checked here before anything is created on the server. */
export function SenderForm({
  locale,
  maxFiles,
  maxBytes,
  limits,
  verificationRequired = false,
  onSend,
  announce,
}: {
  locale: Locale;
  maxFiles: number;
  maxBytes: number;
  /** The mailbox's limits, formatted on the server. */
  limits: { files: string; size: string; kept: string };
  /** The address will be confirmed with a mailed code before sending: say so by the field. */
  verificationRequired?: boolean;
  onSend: (input: SenderInput) => Promise<void>;
  announce: (message: string) => void;
}) {
  const [input, setInput] = useState<SenderInput>({ senderEmail: '', subject: '', message: '', files: [] });
  const [checked, setChecked] = useState(false);
  const [sending, setSending] = useState(false);
  const summary = useRef<HTMLDivElement>(null);
  const errors = checked ? validate(locale, input, maxFiles, maxBytes) : {};
  const errorList = (Object.keys(fieldIds) as FieldName[]).filter((f) => errors[f]);

  const set = <K extends keyof SenderInput>(key: K, value: SenderInput[K]) => setInput((prev) => ({ ...prev, [key]: value }));

  const addFiles = (picked: File[]) => {
    const same = (a: File, b: File) => a.name === b.name && a.size === b.size && a.lastModified === b.lastModified;
    const fresh = picked.filter((f, i) => !input.files.some((g) => same(f, g)) && picked.findIndex((g) => same(f, g)) === i);
    const duplicates = picked.filter((f) => !fresh.includes(f));
    set('files', [...input.files, ...fresh]);
    announce(
      [
        fresh.length ? t(locale, 'form.files.added', { count: fresh.length }) : '',
        ...duplicates.map((f) => t(locale, 'form.error.duplicate', { name: f.name })),
      ].join(' '),
    );
  };

  const removeFile = (file: File) => {
    set(
      'files',
      input.files.filter((f) => f !== file),
    );
    announce(t(locale, 'form.files.removed', { name: file.name }));
    document.getElementById(fieldIds.files)?.focus();
  };

  const submit = async (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    setChecked(true);
    if (Object.keys(validate(locale, input, maxFiles, maxBytes)).length) {
      // After React has rendered the summary.
      requestAnimationFrame(() => summary.current?.focus());
      return;
    }
    setSending(true);
    try {
      await onSend({ ...input, senderEmail: input.senderEmail.trim(), subject: input.subject.trim() });
    } finally {
      setSending(false);
    }
  };

  const describedBy = (field: FieldName, hint?: boolean) =>
    [hint && `${fieldIds[field]}-hint`, errors[field] && `${fieldIds[field]}-error`].filter(Boolean).join(' ') || undefined;

  const totalSize = input.files.reduce((sum, f) => sum + f.size, 0);

  return (
    <form noValidate onSubmit={submit} className="card">
      {errorList.length > 0 && (
        <div className="error-summary" ref={summary} tabIndex={-1} aria-labelledby="error-summary-title">
          <h2 id="error-summary-title">{t(locale, 'form.errorSummary')}</h2>
          <ul>
            {errorList.map((field) => (
              <li key={field}>
                <a
                  href={`#${fieldIds[field]}`}
                  onClick={(event) => {
                    event.preventDefault();
                    document.getElementById(fieldIds[field])?.focus();
                  }}
                >
                  {errors[field]}
                </a>
              </li>
            ))}
          </ul>
        </div>
      )}

      <div className={errors.senderEmail ? 'field field-invalid' : 'field'}>
        <label className="label" htmlFor={fieldIds.senderEmail}>
          {t(locale, 'form.email.label')}
        </label>
        <span className="hint" id={`${fieldIds.senderEmail}-hint`}>
          {t(locale, 'form.email.hint')}
          {verificationRequired && <> {t(locale, 'verify.required')}</>}
        </span>
        {errors.senderEmail && (
          <span className="field-error" id={`${fieldIds.senderEmail}-error`}>
            {errors.senderEmail}
          </span>
        )}
        <input
          className="input"
          id={fieldIds.senderEmail}
          name="email"
          type="email"
          autoComplete="email"
          spellCheck={false}
          required
          aria-invalid={errors.senderEmail ? true : undefined}
          aria-describedby={describedBy('senderEmail', true)}
          value={input.senderEmail}
          onChange={(e) => set('senderEmail', e.target.value)}
        />
      </div>

      <div className={errors.subject ? 'field field-invalid' : 'field'}>
        <label className="label" htmlFor={fieldIds.subject}>
          {t(locale, 'form.subject.label')}
        </label>
        <span className="hint" id={`${fieldIds.subject}-hint`}>
          {t(locale, 'form.subject.hint')}
        </span>
        {errors.subject && (
          <span className="field-error" id={`${fieldIds.subject}-error`}>
            {errors.subject}
          </span>
        )}
        <input
          className="input"
          id={fieldIds.subject}
          name="subject"
          type="text"
          autoComplete="off"
          required
          aria-invalid={errors.subject ? true : undefined}
          aria-describedby={describedBy('subject', true)}
          value={input.subject}
          onChange={(e) => set('subject', e.target.value)}
        />
      </div>

      <div className={errors.message ? 'field field-invalid' : 'field'}>
        <label className="label" htmlFor={fieldIds.message}>
          {t(locale, 'form.message.label')}
        </label>
        <span className="hint" id={`${fieldIds.message}-hint`}>
          {t(locale, 'form.message.hint')}
        </span>
        {errors.message && (
          <span className="field-error" id={`${fieldIds.message}-error`}>
            {errors.message}
          </span>
        )}
        <textarea
          className="textarea"
          id={fieldIds.message}
          name="message"
          rows={6}
          aria-invalid={errors.message ? true : undefined}
          aria-describedby={describedBy('message', true)}
          value={input.message}
          onChange={(e) => set('message', e.target.value)}
        />
      </div>

      <fieldset className={errors.files ? 'field-invalid' : undefined}>
        <legend>{t(locale, 'form.files.legend')}</legend>
        <dl className="limits" id="files-limits" aria-label={t(locale, 'filedrop.limits')}>
          <div>
            <dt>{t(locale, 'filedrop.limit.files')}:</dt>
            <dd>{limits.files}</dd>
          </div>
          <div>
            <dt>{t(locale, 'filedrop.limit.size')}:</dt>
            <dd>{limits.size}</dd>
          </div>
          <div>
            <dt>{t(locale, 'filedrop.limit.kept')}:</dt>
            <dd>{limits.kept}</dd>
          </div>
        </dl>
        {errors.files && (
          <span className="field-error" id={`${fieldIds.files}-error`}>
            {errors.files}
          </span>
        )}
        <FileChooser
          locale={locale}
          inputId={fieldIds.files}
          label={t(locale, 'form.files.choose')}
          describedBy={['files-limits', describedBy('files')].filter(Boolean).join(' ')}
          invalid={Boolean(errors.files)}
          onFiles={addFiles}
        />
        {input.files.length === 0 ? (
          <p className="file-total">{t(locale, 'form.files.none')}</p>
        ) : (
          <>
            <ul className="file-list" aria-label={t(locale, 'form.files.legend')}>
              {input.files.map((file) => (
                <li className="file-item" key={`${file.name}:${file.size}:${file.lastModified}`}>
                  <div>
                    <div className="file-name">{file.name}</div>
                    <div className="file-meta">{formatBytes(locale, file.size)}</div>
                  </div>
                  <div className="file-actions">
                    <button type="button" className="button button-quiet button-small" onClick={() => removeFile(file)}>
                      {t(locale, 'form.files.remove')}
                      <span className="visually-hidden"> {file.name}</span>
                    </button>
                  </div>
                </li>
              ))}
            </ul>
            <p className="file-total">
              {t(locale, 'form.files.total', { count: input.files.length, size: formatBytes(locale, totalSize) })}
            </p>
          </>
        )}
      </fieldset>

      <div className="actions">
        <button type="submit" className="button button-primary" disabled={sending}>
          {t(locale, sending ? 'form.sending' : 'form.submit')}
        </button>
      </div>
    </form>
  );
}
