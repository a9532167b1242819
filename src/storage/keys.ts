import { ErrorCodes, TwillError } from "../errors.js";
import { StorageLimits } from "./types.js";

const KEY_CHARS = /^[A-Za-z0-9._~/=+-]+$/;
const LOG_NAME = /^[A-Za-z0-9._~=+-]+$/;

/** Throws INVALID_ARGUMENT unless `key` is a valid object key (see the rules in types.ts). */
export function validateKey(key: string): void {
  if (typeof key !== "string" || key.length === 0 || key.length > StorageLimits.keyLengthMax) {
    throw new TwillError(
      ErrorCodes.InvalidArgument,
      `object key must be 1..${StorageLimits.keyLengthMax} characters, got ${typeof key === "string" ? key.length : typeof key}`,
    );
  }
  if (!KEY_CHARS.test(key)) {
    throw new TwillError(
      ErrorCodes.InvalidArgument,
      `object key ${JSON.stringify(key)} has a character outside [A-Za-z0-9._~/=+-]`,
    );
  }
  for (const segment of key.split("/")) {
    if (segment === "" || segment === "." || segment === "..") {
      throw new TwillError(
        ErrorCodes.InvalidArgument,
        `object key ${JSON.stringify(key)} has an empty, "." or ".." segment (no leading, trailing or double "/")`,
      );
    }
  }
}

/** A list prefix may be empty or end in "/", but must otherwise follow the key rules. */
export function validatePrefix(prefix: string): void {
  if (prefix === "") return;
  validateKey(prefix.endsWith("/") ? prefix.slice(0, -1) : prefix);
}

export function validateLogName(name: string): void {
  if (
    typeof name !== "string" ||
    name.length === 0 ||
    name.length > StorageLimits.logNameLengthMax ||
    !LOG_NAME.test(name) ||
    name === "." ||
    name === ".."
  ) {
    throw new TwillError(
      ErrorCodes.InvalidArgument,
      `log name ${JSON.stringify(name)} must be 1..${StorageLimits.logNameLengthMax} characters of [A-Za-z0-9._~=+-]`,
    );
  }
}

/** `readIntoSync`'s length: a range length that fits the buffer it is read into. */
export function validateIntoLength(length: number, into: Uint8Array): void {
  if (!Number.isSafeInteger(length) || length < 0 || length > into.length) {
    throw new TwillError(
      ErrorCodes.InvalidArgument,
      `read length must be an integer in [0, ${into.length}] (the buffer's length), got ${length}`,
    );
  }
}

export function validateRange(offset: number, length: number | undefined): void {
  if (!Number.isSafeInteger(offset) || offset < 0) {
    throw new TwillError(
      ErrorCodes.InvalidArgument,
      `range offset must be a non-negative integer, got ${offset}`,
    );
  }
  if (length !== undefined && (!Number.isSafeInteger(length) || length < 0)) {
    throw new TwillError(
      ErrorCodes.InvalidArgument,
      `range length must be a non-negative integer, got ${length}`,
    );
  }
}

export function rangeNotSatisfiable(key: string, offset: number, size: number): TwillError {
  return new TwillError(
    ErrorCodes.InvalidArgument,
    `range offset ${offset} is past the end of object ${JSON.stringify(key)} (${size} bytes)`,
  );
}

export function validateFrames(frames: readonly Uint8Array[]): void {
  if (!Array.isArray(frames) || frames.length === 0 || frames.length > StorageLimits.appendFramesMax) {
    throw new TwillError(
      ErrorCodes.InvalidArgument,
      `append takes 1..${StorageLimits.appendFramesMax} frames, got ${Array.isArray(frames) ? frames.length : typeof frames}`,
    );
  }
  for (const frame of frames) {
    if (!(frame instanceof Uint8Array) || frame.length > StorageLimits.frameBytesMax) {
      throw new TwillError(
        ErrorCodes.InvalidArgument,
        `each frame must be a Uint8Array of at most ${StorageLimits.frameBytesMax} bytes`,
      );
    }
  }
}
