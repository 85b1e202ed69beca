// Pure helpers that turn samples into the markdown the bench prints: statistics, cells, tables,
// goal lines. No I/O here.

export function median(values: readonly number[]): number {
  return quantile(values, 0.5);
}

/** Linear-interpolated quantile of unsorted samples; NaN for no samples. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const position = (sorted.length - 1) * q;
  const lower = Math.floor(position);
  const upper = Math.ceil(position);
  return sorted[lower]! + (sorted[upper]! - sorted[lower]!) * (position - lower);
}

export function formatMs(ms: number): string {
  if (!Number.isFinite(ms)) return '–';
  if (ms < 10) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${ms.toFixed(1)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}

export function formatRatio(ratio: number): string {
  if (!Number.isFinite(ratio)) return '';
  return ratio < 10 ? `${ratio.toFixed(2)}×` : `${ratio.toFixed(0)}×`;
}

/** One cell of the timing table: a median and its ratio to the row's baseline, or why there is none. */
export type Cell =
  | { kind: 'measured'; samples: number[] }
  | { kind: 'failed'; note: string }
  | { kind: 'skipped'; note: string };

export interface Row {
  title: string;
  runs: number;
  cells: Map<string, Cell>;
}

export interface ColumnHeader {
  id: string;
  title: string;
}

export function cellMedian(cell: Cell | undefined): number {
  return cell?.kind === 'measured' ? median(cell.samples) : Number.NaN;
}

/**
 * The main table: one row per workload, one column per wrapper, `median (ratio to baseline)`.
 * Failures and skips become footnote markers so the table stays one line per row.
 */
export function renderTimingTable(columns: readonly ColumnHeader[], rows: readonly Row[], baselineId: string): { table: string; footnotes: string[] } {
  const footnotes: string[] = [];
  const footnoteMarker = (note: string): string => {
    let index = footnotes.indexOf(note);
    if (index === -1) index = footnotes.push(note) - 1;
    return `[${index + 1}]`;
  };
  const lines = [
    `| workload | ${columns.map((column) => column.title).join(' | ')} |`,
    `|---|${columns.map(() => '---:').join('|')}|`,
  ];
  for (const row of rows) {
    const baseline = cellMedian(row.cells.get(baselineId));
    const cells = columns.map((column) => {
      const cell = row.cells.get(column.id);
      if (!cell) return '';
      if (cell.kind === 'skipped') return `skip ${footnoteMarker(cell.note)}`;
      if (cell.kind === 'failed') return `**fail** ${footnoteMarker(`${column.title}, ${row.title}: ${cell.note}`)}`;
      const value = median(cell.samples);
      const ratio = column.id === baselineId ? '' : ` (${formatRatio(value / baseline)})`;
      return `${formatMs(value)}${ratio}`;
    });
    lines.push(`| ${row.title} (n=${row.runs}) | ${cells.join(' | ')} |`);
  }
  return { table: lines.join('\n'), footnotes };
}

export interface GoalCheck {
  name: string;
  /** Null when an input is missing; then `missing` says which. */
  measured: number | null;
  limit: number | null;
  unit: string;
  missing?: string;
  detail: string;
}

export function renderGoal(goal: GoalCheck): string {
  if (goal.measured === null || goal.limit === null || !Number.isFinite(goal.measured) || !Number.isFinite(goal.limit)) {
    return `- SKIP — ${goal.name}: ${goal.missing ?? 'not measured'}`;
  }
  const verdict = goal.measured <= goal.limit ? 'PASS' : 'FAIL';
  return `- ${verdict} — ${goal.name}: ${goal.measured.toFixed(2)}${goal.unit} (limit ${goal.limit.toFixed(2)}${goal.unit}; ${goal.detail})`;
}

/** A plain markdown table; `numeric` marks the columns to right-align. */
export function renderSimpleTable(header: readonly string[], rows: readonly (readonly string[])[], numeric: readonly number[] = []): string {
  return [
    `| ${header.join(' | ')} |`,
    `|${header.map((_, index) => (numeric.includes(index) ? '---:' : '---')).join('|')}|`,
    ...rows.map((row) => `| ${row.join(' | ')} |`),
  ].join('\n');
}
