'use client';
import { useEffect, useRef } from 'react';
import { formatBytes, t, type Locale } from '@/lib/i18n';
import type { DeliveryView } from './delivery-upload';
import { rejectReasonMessage } from './messages';

/** The receipt page: reference, every file's name and SHA-256, and the state until it is final. */
export function DeliveryResult({ locale, view, onSendMore }: { locale: Locale; view: DeliveryView; onSendMore: () => void }) {
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => heading.current?.focus(), []);

  const outcome = view.state === 'delivered' ? 'delivered' : view.state === 'rejected' || view.state === 'abandoned' ? 'rejected' : 'checking';
  const stateText =
    outcome === 'delivered'
      ? t(locale, 'result.state.delivered')
      : outcome === 'rejected'
        ? t(locale, 'result.state.rejected', { reason: rejectReasonMessage(locale, view.rejectReason) })
        : t(locale, 'result.state.checking');

  return (
    <>
      <h1 ref={heading} tabIndex={-1}>
        {t(locale, `result.title.${outcome}`)}
      </h1>
      <div
        className={outcome === 'delivered' ? 'notice notice-success' : outcome === 'rejected' ? 'notice notice-error' : 'notice'}
        role="status"
        data-testid="delivery-state"
        data-state={view.state ?? 'submitted'}
      >
        <p>{stateText}</p>
        {view.pollFailed && <p>{t(locale, 'result.pollFailed')}</p>}
      </div>

      <section className="card" aria-label={t(locale, 'result.reference')}>
        <dl className="facts">
          <dt>{t(locale, 'result.reference')}</dt>
          <dd className="reference" data-testid="reference">
            {view.reference}
          </dd>
        </dl>
        <p>{t(locale, 'result.referenceHint')}</p>
        <p>{t(locale, 'result.receipt', { email: view.senderEmail })}</p>
      </section>

      <section className="card" aria-labelledby="result-files">
        <h2 id="result-files">{t(locale, 'result.files')}</h2>
        <div className="table-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">{t(locale, 'result.fileName')}</th>
                <th scope="col">{t(locale, 'result.fileSize')}</th>
                <th scope="col">{t(locale, 'result.sha256')}</th>
              </tr>
            </thead>
            <tbody>
              {view.files.map((file) => (
                <tr key={file.fileId} data-testid="result-file">
                  <td className="file-name">{file.name}</td>
                  <td className="file-size">{formatBytes(locale, file.size)}</td>
                  <td className="sha256" data-testid="sha256">
                    {file.sha256}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </section>

      <div className="actions">
        <button type="button" className="button" onClick={onSendMore}>
          {t(locale, 'result.sendMore')}
        </button>
      </div>
    </>
  );
}
