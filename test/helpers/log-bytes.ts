import { checkFrame } from "../../src/storage/log-format.js";

/** Byte offset just past the last valid frame of a file:// log segment (segments are zero-padded past it). */
export function frameEnd(segment: Uint8Array): number {
  let at = 0;
  for (;;) {
    const check = checkFrame(segment, at, undefined);
    if (!check.ok) return at;
    at = check.end;
  }
}
