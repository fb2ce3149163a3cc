// Slot files (llama-server's POST /slots/{id}?action=save|restore): a slot's state as saveState() takes it (its
// KV, its tokens and its sliding-window checkpoints) behind a header that says what it can be restored into. A KV
// state carries no identity of the weights it was computed with, so without the header a file saved by another model
// of the same shapes (a fine-tune, another quantization's twin), another KV type or a larger context would be loaded
// and decode garbage, or be refused by llama.cpp with a message that names neither file nor cause. Each mismatch is
// refused here with an ArgumentError that names it (a 400 over HTTP).
//   "LSSLOT1\n"  u32 header length  header (JSON)  i32 tokens x n  state bytes (the rest)
// Little-endian, as every machine the server runs on.
import { createHash } from 'node:crypto';
import { open, readFile, writeFile } from 'node:fs/promises';
import { ArgumentError } from '../errors.ts';
import type { SlotState } from '../scheduler/decoder.ts';

const MAGIC = Buffer.from('LSSLOT1\n', 'latin1');

/** What a slot file must match to be restored. */
export interface SlotFileTarget {
  model: ModelFingerprint;
  kvTypeK: string;
  kvTypeV: string;
  swaFull: boolean;
  /** The most tokens a slot holds here. */
  ctxPerSlot: number;
}

export interface ModelFingerprint {
  arch: string;
  nParams: number;
  fileBytes: number;
  /** SHA-256 of the file's first and last MiB (the metadata, the first and the last tensors' data). */
  sample: string;
}

interface Header extends Omit<SlotFileTarget, 'ctxPerSlot'> {
  format: 1;
  tokens: number;
  /** The slot's context where it was saved (informative: a file fits wherever its tokens fit). */
  savedCtxPerSlot: number;
}

const SAMPLE_BYTES = 1 << 20;

/** Identifies a model file by what it declares and a hash of its two ends (cheap: 2 MiB read). */
export async function fingerprintModel(
  path: string,
  info: { arch: string; nParams: number },
): Promise<ModelFingerprint> {
  const file = await open(path, 'r');
  try {
    const { size } = await file.stat();
    const hash = createHash('sha256');
    const head = Buffer.alloc(Math.min(SAMPLE_BYTES, size));
    await file.read(head, 0, head.length, 0);
    hash.update(head);
    const tailLength = Math.min(SAMPLE_BYTES, size);
    const tail = Buffer.alloc(tailLength);
    await file.read(tail, 0, tailLength, size - tailLength);
    hash.update(tail);
    return { arch: info.arch, nParams: info.nParams, fileBytes: size, sample: hash.digest('hex') };
  } finally {
    await file.close();
  }
}

/** Writes the file; resolves with its size in bytes. */
export async function writeSlotFile(path: string, target: SlotFileTarget, saved: SlotState): Promise<number> {
  const header: Header = {
    format: 1,
    model: target.model,
    kvTypeK: target.kvTypeK,
    kvTypeV: target.kvTypeV,
    swaFull: target.swaFull,
    tokens: saved.tokens.length,
    savedCtxPerSlot: target.ctxPerSlot,
  };
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const length = Buffer.alloc(4);
  length.writeUInt32LE(json.length);
  const tokens = Buffer.from(Int32Array.from(saved.tokens).buffer);
  const data = Buffer.concat([MAGIC, length, json, tokens, saved.state]);
  await writeFile(path, data);
  return data.length;
}

function refuse(why: string): never {
  throw new ArgumentError('INVALID_ARGUMENT', `the slot file cannot be restored here: ${why}`);
}

function describe(m: ModelFingerprint): string {
  return `${m.arch}, ${m.nParams} parameters, a ${m.fileBytes}-byte file`;
}

/** Reads and checks a slot file against where it would be restored. */
export async function readSlotFile(path: string, target: SlotFileTarget): Promise<SlotState> {
  let data: Buffer;
  try {
    data = await readFile(path);
  } catch (err) {
    // The path is the server's: the message names the cause, never the folder.
    const code = (err as NodeJS.ErrnoException).code;
    refuse(code === 'ENOENT' ? 'there is no file by that name' : `it cannot be read (${code ?? 'error'})`);
  }
  if (data.length < MAGIC.length + 4 || !data.subarray(0, MAGIC.length).equals(MAGIC))
    refuse('it is not a slot file saved by this server (llama-server writes another format)');
  const headerLength = data.readUInt32LE(MAGIC.length);
  const headerEnd = MAGIC.length + 4 + headerLength;
  if (headerEnd > data.length) refuse('it is cut short');
  let header: Header;
  try {
    header = JSON.parse(data.subarray(MAGIC.length + 4, headerEnd).toString('utf8')) as Header;
  } catch {
    refuse('its header is damaged');
  }
  if (header.format !== 1) refuse(`format ${header.format} is not one this server reads`);
  const m = header.model;
  const here = target.model;
  if (m.arch !== here.arch || m.nParams !== here.nParams || m.fileBytes !== here.fileBytes || m.sample !== here.sample)
    refuse(`it was saved by another model (${describe(m)}); this server runs ${describe(here)}`);
  if (header.kvTypeK !== target.kvTypeK || header.kvTypeV !== target.kvTypeV)
    refuse(
      `it was saved with KV cache types ${header.kvTypeK}/${header.kvTypeV}; this server runs ${target.kvTypeK}/${target.kvTypeV} (-ctk/-ctv)`,
    );
  if (header.swaFull !== target.swaFull)
    refuse(
      `it was saved with${header.swaFull ? '' : 'out'} --swa-full; this server runs with${target.swaFull ? '' : 'out'}`,
    );
  if (header.tokens > target.ctxPerSlot)
    refuse(
      `it holds ${header.tokens} tokens (saved with a context of ${header.savedCtxPerSlot} per slot); a slot here holds at most ${target.ctxPerSlot}`,
    );
  const tokensEnd = headerEnd + 4 * header.tokens;
  if (tokensEnd > data.length) refuse('it is cut short');
  const tokens = Array.from(
    new Int32Array(data.buffer.slice(data.byteOffset + headerEnd, data.byteOffset + tokensEnd)),
  );
  return { tokens, state: new Uint8Array(data.subarray(tokensEnd)) };
}
