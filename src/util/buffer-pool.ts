/**
 * Recycled buffers of one fixed size. V8 counts new ArrayBuffers towards its next full GC (about one per 64 MB),
 * and a full GC marks the whole heap, so code that fills large buffers over and over (memtable arenas, SST writer
 * slabs) takes them from here. Holds at most `keepMax` idle buffers; a buffer of any other size is left to the GC.
 */
export class FixedBufferPool {
  private readonly idle: Uint8Array[] = [];

  constructor(
    readonly bufferBytes: number,
    readonly keepMax: number,
  ) {}

  take(): Uint8Array {
    return this.idle.pop() ?? new Uint8Array(this.bufferBytes);
  }

  give(buffer: Uint8Array): void {
    if (buffer.length === this.bufferBytes && this.idle.length < this.keepMax) this.idle.push(buffer);
  }

  get idleCount(): number {
    return this.idle.length;
  }

  get idleBytes(): number {
    return this.idle.length * this.bufferBytes;
  }

  /** Drops the idle buffers (to the GC): between bursts of writing they are memory nothing uses. */
  clear(): void {
    this.idle.length = 0;
  }
}
