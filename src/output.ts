// Captures a stream up to a byte budget, keeping its head and its tail: the start of a build log
// says what ran, the end says why it failed; the middle of a huge log is what an agent can lose.

export class HeadTailCapture {
  private head: Buffer[] = [];
  private headBytes = 0;
  private tail: Buffer[] = [];
  private tailBytes = 0;
  private total = 0;

  constructor(private readonly limit: number) {}

  push(chunk: Buffer): void {
    this.total += chunk.length;
    const headRoom = Math.floor(this.limit / 2) - this.headBytes;
    if (headRoom > 0) {
      const part = chunk.subarray(0, headRoom);
      this.head.push(part);
      this.headBytes += part.length;
      chunk = chunk.subarray(part.length);
    }
    if (!chunk.length) return;
    this.tail.push(chunk);
    this.tailBytes += chunk.length;
    const tailLimit = this.limit - Math.floor(this.limit / 2);
    while (this.tailBytes - this.tail[0]!.length >= tailLimit) this.tailBytes -= this.tail.shift()!.length;
  }

  /** Bytes dropped from the middle. */
  get cut(): number {
    return Math.max(0, this.total - this.limit);
  }

  get totalBytes(): number {
    return this.total;
  }

  text(): string {
    const tailLimit = this.limit - Math.floor(this.limit / 2);
    let tail = Buffer.concat(this.tail);
    if (tail.length > tailLimit) tail = tail.subarray(tail.length - tailLimit);
    const head = Buffer.concat(this.head);
    if (this.cut === 0) return Buffer.concat([head, tail]).toString('utf8');
    return `${head.toString('utf8')}\n[… cordon cut ${this.cut} bytes of output here …]\n${tail.toString('utf8')}`;
  }
}
