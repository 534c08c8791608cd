'use client';
import { useEffect, useRef, useState } from 'react';
import { formatBytes, formatDateTime, formatDuration, t, type Locale } from '@/lib/i18n';
import type { DeliveryUpload, DeliveryView, FileView } from './delivery-upload';
import { FileChooser } from './file-chooser';
import { problemMessage } from './messages';

/** How often the live region reads out overall progress: often enough to follow, rarely enough to bear. */
const ANNOUNCE_EVERY_MS = 20_000;

function fraction(file: FileView): number {
  if (file.status === 'done') return 1;
  return file.total ? Math.min(1, file.sent / file.total) : 0;
}

/** Overall progress in the sender's terms (plaintext bytes), and a time-left estimate. */
export function totals(view: DeliveryView) {
  const size = view.files.reduce((sum, f) => sum + f.size, 0);
  const sent = view.files.reduce((sum, f) => sum + fraction(f) * f.size, 0);
  const percent = size ? Math.floor((sent / size) * 100) : 0;
  const secondsLeft = view.speed ? (size - sent) / view.speed : null;
  return { size, sent, percent, secondsLeft };
}

export function DeliveryProgress({
  locale,
  delivery,
  view,
  announce,
}: {
  locale: Locale;
  delivery: DeliveryUpload;
  view: DeliveryView;
  announce: (message: string) => void;
}) {
  const [unmatched, setUnmatched] = useState<string[]>([]);
  const heading = useRef<HTMLHeadingElement>(null);
  const latest = useRef(view);
  useEffect(() => {
    latest.current = view;
  }, [view]);
  const sum = totals(view);
  const submitting = view.phase === 'submitting';
  const needsFiles = view.files.some((f) => f.status === 'needsFile');

  useEffect(
    () =>
      delivery.onEvent(({ kind, name }) => {
        const key = ({
          fileDone: 'upload.announce.fileDone',
          paused: 'upload.announce.paused',
          resumed: 'upload.announce.resumed',
          failed: 'upload.announce.failed',
          restarted: 'upload.announce.restarted',
        } as const)[kind];
        announce(t(locale, key, { name }));
      }),
    [delivery, locale, announce],
  );

  // Progress is read out on a slow timer, and only when it moved: not on every tick.
  useEffect(() => {
    let lastPercent = -1;
    const timer = setInterval(() => {
      const current = latest.current;
      if (!current.files.some((f) => f.status === 'uploading')) return;
      const { percent, secondsLeft } = totals(current);
      if (percent === lastPercent) return;
      lastPercent = percent;
      announce(
        secondsLeft === null
          ? t(locale, 'upload.announce.progressNoEta', { percent })
          : t(locale, 'upload.announce.progress', { percent, time: formatDuration(locale, secondsLeft) }),
      );
    }, ANNOUNCE_EVERY_MS);
    return () => clearInterval(timer);
  }, [locale, announce]);

  const pick = (files: File[]) => {
    const names = delivery.pick(files);
    setUnmatched(names);
    if (names.length) announce(names.map((name) => t(locale, 'resume.noMatch', { name })).join(' '));
  };

  const cancel = (question: 'upload.cancelConfirm' | 'resume.discardConfirm') => {
    if (window.confirm(t(locale, question))) void delivery.cancel();
  };

  return (
    <>
      <h1>{t(locale, 'upload.title')}</h1>
      <section className="card" aria-label={t(locale, 'upload.reference')}>
        <dl className="facts">
          <dt>{t(locale, 'upload.reference')}</dt>
          <dd className="reference">{view.reference}</dd>
          <dt>{t(locale, 'upload.from')}</dt>
          <dd>{view.senderEmail}</dd>
          <dt>{t(locale, 'upload.subject')}</dt>
          <dd>{view.subject}</dd>
        </dl>
        <p>{t(locale, 'upload.keepOpen')}</p>
      </section>

      {needsFiles && (
        <section className="notice" aria-labelledby="resume-title">
          <h2 id="resume-title">{t(locale, 'resume.title')}</h2>
          <p>{t(locale, 'resume.body')}</p>
          <p>{t(locale, 'resume.expires', { date: formatDateTime(locale, new Date(view.uploadExpiresAt)) })}</p>
          <FileChooser locale={locale} inputId="repick" label={t(locale, 'resume.choose')} onFiles={pick} />
          {unmatched.length > 0 && (
            <ul className="field-error">
              {unmatched.map((name) => (
                <li key={name}>{t(locale, 'resume.noMatch', { name })}</li>
              ))}
            </ul>
          )}
          <div className="actions">
            <button type="button" className="button button-danger" onClick={() => cancel('resume.discardConfirm')}>
              {t(locale, 'resume.discard')}
            </button>
          </div>
        </section>
      )}

      <section className="card" aria-labelledby="progress-title">
        <h2 id="progress-title" ref={heading} tabIndex={-1}>
          {t(locale, 'upload.total')}
        </h2>
        <progress className="progress progress-total" max={100} value={sum.percent} aria-labelledby="progress-title" />
        <p className="file-meta" data-testid="total-progress">
          {t(locale, 'upload.progress', {
            percent: sum.percent,
            sent: formatBytes(locale, sum.sent),
            total: formatBytes(locale, sum.size),
          })}
          {view.speed !== null && ` · ${t(locale, 'upload.speed', { speed: formatBytes(locale, view.speed) })}`}
          {sum.secondsLeft !== null && ` · ${t(locale, 'upload.timeLeft', { time: formatDuration(locale, sum.secondsLeft) })}`}
        </p>

        {submitting && <p role="status">{t(locale, 'upload.submitting')}</p>}
        {view.submitProblem && (
          <div className="notice notice-error" role="alert">
            <p>{problemMessage(locale, view.submitProblem)}</p>
            <button type="button" className="button" onClick={() => delivery.retrySubmit()}>
              {t(locale, 'upload.retry')}
            </button>
          </div>
        )}
        {view.files.length === 0 && <p className="notice">{t(locale, 'upload.noFilesLeft')}</p>}

        <ul className="file-list">
          {view.files.map((file) => (
            <FileRow
              key={file.fileId}
              locale={locale}
              file={file}
              disabled={submitting}
              onPause={() => delivery.pause(file.fileId)}
              onResume={() => delivery.resume(file.fileId)}
              onRemove={() => {
                void delivery.remove(file.fileId);
                announce(t(locale, 'form.files.removed', { name: file.name }));
                heading.current?.focus();
              }}
            />
          ))}
        </ul>

        {!submitting && (
          <div className="actions">
            <button type="button" className="button button-danger" onClick={() => cancel('upload.cancelConfirm')}>
              {t(locale, 'upload.cancel')}
            </button>
          </div>
        )}
      </section>
    </>
  );
}

function FileRow({
  locale,
  file,
  disabled,
  onPause,
  onResume,
  onRemove,
}: {
  locale: Locale;
  file: FileView;
  disabled: boolean;
  onPause: () => void;
  onResume: () => void;
  onRemove: () => void;
}) {
  const share = fraction(file);
  const percent = Math.floor(share * 100);
  const nameId = `file-${file.fileId}`;
  const active = file.status === 'waiting' || file.status === 'preparing' || file.status === 'uploading';
  return (
    <li className="file-item" data-testid="upload-file" data-status={file.status}>
      <div>
        <div className="file-name" id={nameId}>
          {file.name}
        </div>
        <div className="file-meta">
          <span className={`status status-${file.status}`}>{t(locale, `upload.status.${file.status}`)}</span>{' '}
          {file.status === 'done' || file.sent === 0
            ? formatBytes(locale, file.size)
            : t(locale, 'upload.progress', {
                percent,
                sent: formatBytes(locale, share * file.size),
                total: formatBytes(locale, file.size),
              })}
        </div>
      </div>
      <div className="file-actions">
        {active && (
          <button type="button" className="button button-quiet button-small" disabled={disabled} onClick={onPause}>
            {t(locale, 'upload.pause')}
            <span className="visually-hidden"> {file.name}</span>
          </button>
        )}
        {(file.status === 'paused' || file.status === 'failed') && (
          <button type="button" className="button button-quiet button-small" disabled={disabled} onClick={onResume}>
            {t(locale, file.status === 'paused' ? 'upload.resume' : 'upload.retry')}
            <span className="visually-hidden"> {file.name}</span>
          </button>
        )}
        {file.removable && (
          <button type="button" className="button button-quiet button-small" disabled={disabled} onClick={onRemove}>
            {t(locale, 'form.files.remove')}
            <span className="visually-hidden"> {file.name}</span>
          </button>
        )}
      </div>
      <progress className="progress" max={100} value={percent} aria-labelledby={nameId} />
      {file.problem && <p className="field-error file-detail">{problemMessage(locale, file.problem)}</p>}
    </li>
  );
}
