import { ErrorCodes, notFound, TwillError } from "../../src/errors.js";
import type { ByteRange, ObjectStore } from "../../src/storage/types.js";

/**
 * A Map-based ObjectStore with the range semantics of the storage seam, counting requests, whose objects a test
 * can reach directly (to corrupt or truncate them). `yieldPerRead` makes every read wait one turn of the event
 * loop, so concurrent readers really overlap (block-cache deduplication tests); benchmarks leave it off.
 */
export class MapStore implements ObjectStore {
  readonly objects = new Map<string, Uint8Array>();
  reads = 0;
  sizes = 0;
  inFlight = 0;
  maxInFlight = 0;

  constructor(private readonly options: { yieldPerRead?: boolean } = {}) {}

  async read(key: string, range?: ByteRange): Promise<Uint8Array> {
    this.reads++;
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      if (this.options.yieldPerRead) await new Promise((resolve) => setImmediate(resolve));
      const bytes = this.objects.get(key);
      if (bytes === undefined) throw notFound(`object ${key}`);
      const offset = range?.offset ?? 0;
      if (offset > bytes.length)
        throw new TwillError(ErrorCodes.InvalidArgument, "range offset past the end");
      const end = range?.length === undefined ? bytes.length : Math.min(bytes.length, offset + range.length);
      return bytes.slice(offset, end);
    } finally {
      this.inFlight--;
    }
  }

  async size(key: string): Promise<number> {
    this.sizes++;
    const bytes = this.objects.get(key);
    if (bytes === undefined) throw notFound(`object ${key}`);
    return bytes.length;
  }

  async write(key: string, bytes: Uint8Array): Promise<void> {
    this.objects.set(key, bytes.slice());
  }

  async writeIfAbsent(key: string, bytes: Uint8Array): Promise<boolean> {
    if (this.objects.has(key)) return false;
    this.objects.set(key, bytes.slice());
    return true;
  }

  async *list(prefix: string): AsyncIterable<string> {
    for (const key of [...this.objects.keys()].sort()) if (key.startsWith(prefix)) yield key;
  }

  async delete(key: string): Promise<void> {
    this.objects.delete(key);
  }
}
