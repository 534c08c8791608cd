/** The results table: plain text for the terminal, Markdown for BENCHMARKS.md. */

export interface Row {
  section: string;
  store: string;
  what: string;
  value: number;
  unit: string;
  /** Rounds behind a median. */
  n?: number;
  /** This row's path ÷ the row above it (or as the note says), judged against `target` (≥). */
  ratio?: number;
  target?: number;
  /** The value is judged against this upper limit (≤). */
  limit?: number;
  note?: string;
}

function verdict(r: Row): string {
  if (r.ratio !== undefined && r.target !== undefined) return r.ratio >= r.target ? 'met' : 'MISSED';
  if (r.limit !== undefined) return r.value <= r.limit ? 'met' : 'MISSED';
  return '';
}

function cells(r: Row): string[] {
  const value = Number.isFinite(r.value) ? (Math.abs(r.value) >= 100 ? r.value.toFixed(0) : r.value.toFixed(1)) : 'n/a';
  const target =
    r.target !== undefined ? `≥ ${r.target}×` : r.limit !== undefined ? `≤ ${r.limit} ${r.unit.split(' ')[0]}` : '';
  return [
    r.section,
    r.store,
    r.what,
    `${value} ${r.unit}`,
    r.n ? `median of ${r.n}` : '',
    r.ratio !== undefined ? `${r.ratio.toFixed(2)}×` : '',
    target,
    verdict(r),
    r.note ?? '',
  ];
}

const HEAD = ['section', 'store', 'measure', 'value', 'rounds', 'ratio', 'target', 'result', 'note'];

export function renderTable(rows: Row[]): string {
  const all = [HEAD, ...rows.map(cells)];
  const widths = HEAD.map((_, i) => Math.max(...all.map((r) => [...r[i]].length)));
  const line = (r: string[]) => r.map((c, i) => c + ' '.repeat(widths[i] - [...c].length)).join('  ').trimEnd();
  return [line(HEAD), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map((r) => line(cells(r)))].join('\n');
}

export function renderMarkdown(rows: Row[]): string {
  const esc = (c: string) => c.replace(/\|/g, '\\|');
  return [
    `| ${HEAD.join(' | ')} |`,
    `| ${HEAD.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => `| ${cells(r).map(esc).join(' | ')} |`),
  ].join('\n');
}
