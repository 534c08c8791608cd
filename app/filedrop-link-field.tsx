import { CopyButton, type CopyTexts } from './copy-button';

/** A filedrop link shown in full, selectable, with a Copy button: the admin's and the handler's. */
export function FiledropLinkField(props: { id: string; label: string; link: string; texts: CopyTexts; testId: string }) {
  const { id, label, link, texts, testId } = props;
  return (
    <>
      <label className="label" htmlFor={id}>
        {label}
      </label>
      <div className="filedrop-link">
        <input className="input mono" id={id} readOnly value={link} data-testid={testId} />
        <CopyButton text={link} texts={texts} />
      </div>
    </>
  );
}
