/**
 * HNSW records as engine KV values. Keys (built by the SQL layer, src/engine/sql/hnsw-index.ts):
 *   [indexId, 0]               → meta record: the entry point
 *   [indexId, 1, nodeBytes]    → vector record of a node; nodeBytes is the row's encoded primary-key suffix, so
 *                                a hit names its row directly and an update of the same row rewrites the same key
 *   [indexId, 1, nodeBytes, 1] → links record of the node (sorts right after its vector record: same block)
 *
 * A node is split in two because its links change far more often than its vector: every insert relinks up to
 * 2M neighbours, and rewriting their vectors with their links was 90% of the bytes a bulk load wrote. A write of
 * a node always writes its links record (so two writers of one node conflict on that key); the vector record
 * only when the vector is new.
 *
 * Vector record, format 2 (all integers little-endian):
 *   u8  format (2) · u8 reserved (0) · u8 level L (0..16) · u8 reserved (0)
 *   u32 dimension count n
 *   n × f32 vector (unit length for cosine indexes)
 * Links record, format 2:
 *   u8  format (2) · u8 flags: bit 0 = deleted · u8 level L (equal to the vector record's) · u8 reserved (0)
 *   for each level 0..L: u16 link count c, then c × (u16 id length, id bytes)
 * Node record, format 1 (databases written before the split; still read): the vector record's layout with
 * format 1, the deleted flag in byte 1, and the links section appended. A links record, once one is written for
 * the node, supersedes the format-1 record's flags and links.
 * Meta record:
 *   u8 format (1) · u8 max level · u16 entry id length · entry id bytes
 *
 * Node ids are byte strings held in memory as latin1 strings (one char per byte), so they are Map keys and
 * round-trip exactly. Decoding checks every length against the record and throws CORRUPTION on a mismatch.
 *
 * In memory the graph names nodes by integer handles (hnsw.ts); records always carry the ids, so a record means
 * the same in every process. Encoding and decoding translate through the store's handle table (`Handles`).
 */

import { ErrorCodes, TwillError } from "../errors.js";
import type { HnswMeta, HnswNode, NodeStore } from "./hnsw.js";

/** The handle table of a node store. */
export type Handles = Pick<NodeStore, "handle" | "idOf">;

const FORMAT_1 = 1;
const FORMAT = 2;
const META_FORMAT = 1;
const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function corrupt(what: string): TwillError {
  return new TwillError(ErrorCodes.Corruption, `corrupt HNSW record: ${what}`);
}

/** The vector record of a node (format 2). */
export function encodeVector(node: HnswNode): Uint8Array {
  const n = node.vector.length;
  const out = new Uint8Array(8 + 4 * n);
  const dv = new DataView(out.buffer);
  out[0] = FORMAT;
  out[2] = node.level;
  dv.setUint32(4, n, true);
  if (littleEndian) out.set(new Uint8Array(node.vector.buffer, node.vector.byteOffset, 4 * n), 8);
  else for (let i = 0; i < n; i++) dv.setFloat32(8 + 4 * i, node.vector[i]!, true);
  return out;
}

/** The links record of a node (format 2). */
export function encodeLinks(node: HnswNode, handles: Handles): Uint8Array {
  // Two passes over the handles (size, then bytes): every commit of a bulk load encodes thousands of these, and
  // per-level id arrays were most of the cost.
  let size = 4;
  for (let l = 0; l <= node.level; l++) {
    size += 2;
    const level = node.neighbors[l];
    if (level !== undefined)
      for (let i = 0; i < level.length; i++) size += 2 + handles.idOf(level[i]!).length;
  }
  const out = new Uint8Array(size);
  out[0] = FORMAT;
  out[1] = node.deleted ? 1 : 0;
  out[2] = node.level;
  let p = 4;
  for (let l = 0; l <= node.level; l++) {
    const links = node.neighbors[l];
    const c = links === undefined ? 0 : links.length;
    out[p++] = c & 0xff;
    out[p++] = c >> 8;
    for (let i = 0; i < c; i++) {
      const id = handles.idOf(links![i]!);
      out[p++] = id.length & 0xff;
      out[p++] = id.length >> 8;
      for (let j = 0; j < id.length; j++) out[p++] = id.charCodeAt(j);
    }
  }
  return out;
}

function latin1(bytes: Uint8Array, start: number, end: number): string {
  let s = "";
  for (let i = start; i < end; i++) s += String.fromCharCode(bytes[i]!);
  return s;
}

/** Reads the links section at `p` (levels 0..level); returns the lists and the offset after them. */
function readLinks(
  id: string,
  bytes: Uint8Array,
  dv: DataView,
  p: number,
  level: number,
  handles: Handles,
): number[][] {
  const neighbors: number[][] = new Array(level + 1);
  for (let l = 0; l <= level; l++) {
    if (p + 2 > bytes.length) throw corrupt(`node ${JSON.stringify(id)}: truncated links`);
    const c = dv.getUint16(p, true);
    p += 2;
    const links: number[] = new Array(c);
    for (let j = 0; j < c; j++) {
      if (p + 2 > bytes.length) throw corrupt(`node ${JSON.stringify(id)}: truncated link`);
      const len = dv.getUint16(p, true);
      p += 2;
      if (p + len > bytes.length) throw corrupt(`node ${JSON.stringify(id)}: link runs past the record`);
      links[j] = handles.handle(latin1(bytes, p, p + len));
      p += len;
    }
    neighbors[l] = links;
  }
  if (p !== bytes.length) throw corrupt(`node ${JSON.stringify(id)}: ${bytes.length - p} trailing bytes`);
  return neighbors;
}

/**
 * A node from its vector record (format 2, or a whole format-1 node record) and its links record, if one was
 * written. A format-2 vector record without a links record is corrupt: both are written together.
 */
export function decodeNode(
  id: string,
  vectorBytes: Uint8Array,
  linksBytes: Uint8Array | undefined,
  handles: Handles,
): HnswNode {
  const format = vectorBytes[0];
  if (vectorBytes.length < 8 || (format !== FORMAT && format !== FORMAT_1))
    throw corrupt(`node ${JSON.stringify(id)}: bad header`);
  const dv = new DataView(vectorBytes.buffer, vectorBytes.byteOffset, vectorBytes.byteLength);
  const level = vectorBytes[2]!;
  const n = dv.getUint32(4, true);
  const end = 8 + 4 * n;
  if (end > vectorBytes.length) throw corrupt(`node ${JSON.stringify(id)}: vector runs past the record`);
  if (format === FORMAT && end !== vectorBytes.length)
    throw corrupt(`node ${JSON.stringify(id)}: ${vectorBytes.length - end} trailing bytes after the vector`);
  const vector = new Float32Array(n);
  if (littleEndian) new Uint8Array(vector.buffer).set(vectorBytes.subarray(8, end));
  else for (let i = 0; i < n; i++) vector[i] = dv.getFloat32(8 + 4 * i, true);
  let deleted: boolean;
  let neighbors: number[][];
  if (linksBytes !== undefined) {
    if (linksBytes.length < 4 || linksBytes[0] !== FORMAT)
      throw corrupt(`node ${JSON.stringify(id)}: bad links header`);
    if (linksBytes[2] !== level) throw corrupt(`node ${JSON.stringify(id)}: links level ≠ vector level`);
    const ldv = new DataView(linksBytes.buffer, linksBytes.byteOffset, linksBytes.byteLength);
    deleted = (linksBytes[1]! & 1) === 1;
    neighbors = readLinks(id, linksBytes, ldv, 4, level, handles);
  } else {
    if (format === FORMAT) throw corrupt(`node ${JSON.stringify(id)}: links record missing`);
    deleted = (vectorBytes[1]! & 1) === 1;
    neighbors = readLinks(id, vectorBytes, dv, end, level, handles);
  }
  return { id, handle: handles.handle(id), vector, level, neighbors, deleted, slot: -1, epoch: 0 };
}

export function encodeMeta(meta: HnswMeta, handles: Handles): Uint8Array {
  const entry = handles.idOf(meta.entry);
  const out = new Uint8Array(4 + entry.length);
  out[0] = META_FORMAT;
  out[1] = meta.maxLevel;
  new DataView(out.buffer).setUint16(2, entry.length, true);
  for (let i = 0; i < entry.length; i++) out[4 + i] = entry.charCodeAt(i);
  return out;
}

export function decodeMeta(bytes: Uint8Array, handles: Handles): HnswMeta {
  if (bytes.length < 4 || bytes[0] !== META_FORMAT) throw corrupt("meta: bad header");
  const len = bytes[2]! | (bytes[3]! << 8);
  if (4 + len !== bytes.length) throw corrupt("meta: bad entry length");
  return { entry: handles.handle(latin1(bytes, 4, 4 + len)), maxLevel: bytes[1]! };
}

/** Node ids from and to the bytes they stand for. */
export function idFromBytes(b: Uint8Array): string {
  return latin1(b, 0, b.length);
}

export function idToBytes(id: string): Uint8Array {
  const out = new Uint8Array(id.length);
  for (let i = 0; i < id.length; i++) out[i] = id.charCodeAt(i);
  return out;
}
