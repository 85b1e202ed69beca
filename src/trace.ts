// CORDON_TRACE=1 prints where a command's time goes (milliseconds since process start) on stderr.
// Off by default, and then free: the check is one property read.
const on = !!process.env.CORDON_TRACE;

export function trace(label: string): void {
  if (on) process.stderr.write(`cordon-trace ${performance.now().toFixed(2)} ${label}\n`);
}
