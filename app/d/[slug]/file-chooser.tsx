'use client';
import { useRef, useState, type DragEvent } from 'react';
import { t, type Locale } from '@/lib/i18n';

/**
 * Files by picker or by drag and drop. The real file input stays focusable (visually hidden, its
 * label looks like a button), so keyboard and screen-reader users have the same way in; dropping
 * is an extra for pointer users.
 */
export function FileChooser({
  locale,
  inputId,
  label,
  describedBy,
  invalid,
  onFiles,
}: {
  locale: Locale;
  inputId: string;
  label: string;
  describedBy?: string;
  invalid?: boolean;
  onFiles: (files: File[]) => void;
}) {
  const [active, setActive] = useState(false);
  const zone = useRef<HTMLDivElement>(null);

  const onDragOver = (event: DragEvent<HTMLDivElement>) => {
    if (!event.dataTransfer.types.includes('Files')) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = 'copy';
    setActive(true);
  };
  const onDragLeave = (event: DragEvent<HTMLDivElement>) => {
    if (!zone.current?.contains(event.relatedTarget as Node | null)) setActive(false);
  };
  const onDrop = (event: DragEvent<HTMLDivElement>) => {
    event.preventDefault();
    setActive(false);
    // A dropped folder arrives as an unreadable "file": leave folders out.
    const items = [...event.dataTransfer.items];
    const files = [...event.dataTransfer.files].filter((_, i) => !items[i]?.webkitGetAsEntry?.()?.isDirectory);
    if (files.length) onFiles(files);
  };

  return (
    <div
      ref={zone}
      className={active ? 'dropzone dropzone-active' : 'dropzone'}
      onDragEnter={onDragOver}
      onDragOver={onDragOver}
      onDragLeave={onDragLeave}
      onDrop={onDrop}
    >
      <input
        id={inputId}
        className="file-input"
        type="file"
        multiple
        aria-describedby={describedBy}
        aria-invalid={invalid || undefined}
        onChange={(event) => {
          const files = [...(event.currentTarget.files ?? [])];
          // Cleared so that the same file can be chosen again after it was removed.
          event.currentTarget.value = '';
          if (files.length) onFiles(files);
        }}
      />
      <label htmlFor={inputId} className="button">
        {label}
      </label>
      <span aria-hidden="true">{t(locale, active ? 'form.files.dropActive' : 'form.files.drop')}</span>
    </div>
  );
}
