// The memory pass: each wrapper's peak resident set, measured with GNU time's %M (the largest
// max RSS among the process and the descendants it waited for). Untimed; runs after the table.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Column, MemoryProbe } from './columns.js';
import { memoryDriverProbe } from './layout.js';
import { firstErrorLine, runProcess } from './process.js';
import { median } from './report.js';

export const GNU_TIME = '/usr/bin/time';
const SAMPLES = 3;

export interface MemoryFigure {
  columnId: string;
  /** Median of the samples, in KiB; null when the probe failed. */
  peakKib: number | null;
  baselineId?: string;
  note?: string;
}

async function measureOnce(probe: MemoryProbe, scratch: string): Promise<number | string> {
  const output = join(scratch, 'rss');
  const options = { cwd: probe.cwd, ...(probe.env ? { env: probe.env } : {}) };
  const result = await runProcess(GNU_TIME, ['-f', '%M', '-o', output, probe.file, ...probe.args], options);
  if (result.exitCode !== 0) return firstErrorLine(result);
  const kib = Number(readFileSync(output, 'utf8').trim().split('\n').pop());
  return Number.isFinite(kib) && kib > 0 ? kib : `unreadable %M output`;
}

/**
 * Measure every column that has a memory probe, plus `node-host` (a Node process spawning the same
 * commands, the baseline for library columns). `scratchRoot` holds the %M output files.
 */
export async function measureMemory(
  columns: readonly Column[],
  scratchRoot: string,
  workspaceFor: (columnId: string) => string,
): Promise<MemoryFigure[]> {
  const scratch = mkdtempSync(join(scratchRoot, 'rss-'));
  const figures: MemoryFigure[] = [];
  try {
    const { baselineId: _itself, ...nodeHost } = memoryDriverProbe('node-host', workspaceFor('node-host'));
    const probes: { columnId: string; probe: MemoryProbe }[] = [{ columnId: 'node-host', probe: nodeHost }];
    for (const column of columns) {
      if (column.memoryProbe) probes.push({ columnId: column.id, probe: await column.memoryProbe(workspaceFor(column.id)) });
    }
    for (const { columnId, probe } of probes) {
      const samples: number[] = [];
      let failure: string | null = null;
      for (let index = 0; index < SAMPLES && failure === null; index++) {
        const outcome = await measureOnce(probe, scratch);
        probe.cleanup?.();
        if (typeof outcome === 'string') failure = outcome;
        else samples.push(outcome);
      }
      const figure: MemoryFigure = { columnId, peakKib: failure === null ? median(samples) : null };
      if (probe.baselineId) figure.baselineId = probe.baselineId;
      if (failure !== null) figure.note = failure;
      figures.push(figure);
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  return figures;
}
