// A Node host for one library column, run under `/usr/bin/time -f %M` by the memory pass:
// loads the column, runs `true` N times through it, exits. `node-host` is the same host with a
// plain spawn, the baseline a library's share is measured against.
//   node dist/bench/memory-driver.js <column-id|node-host> <workspace> <count>
import { bareColumn } from './columns.js';
import { firstErrorLine } from './process.js';
import { COLUMNS } from './registry.js';

const MAX_COMMANDS = 1000;

async function main(): Promise<number> {
  const [columnId, workspace, countText] = process.argv.slice(2);
  const count = Number(countText);
  if (!columnId || !workspace || !Number.isInteger(count) || count < 1 || count > MAX_COMMANDS) {
    process.stderr.write(`usage: memory-driver <column-id|node-host> <workspace> <count 1..${MAX_COMMANDS}>\n`);
    return 2;
  }
  const column = columnId === 'node-host' ? bareColumn : COLUMNS.find((candidate) => candidate.id === columnId);
  if (!column) {
    process.stderr.write(`memory-driver: unknown column ${JSON.stringify(columnId)}; use one of node-host, ${COLUMNS.map((c) => c.id).join(', ')}\n`);
    return 2;
  }
  const runner = await column.open(workspace);
  try {
    for (let index = 0; index < count; index++) {
      const result = await runner.run(['true']);
      if (result.exitCode !== 0) {
        process.stderr.write(`memory-driver: ${columnId}: \`true\` failed (${firstErrorLine(result)})\n`);
        return 1;
      }
    }
  } finally {
    await runner.close();
  }
  return 0;
}

// Exit explicitly: a library may keep handles (proxies, timers) alive after close().
process.exit(await main());
