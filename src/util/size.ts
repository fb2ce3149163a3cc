// Memory sizes as people type them: 1GiB, 1024MiB, 1G, 900M, 1.5G, 512k, or plain bytes.
// K/M/G/T and KiB/MiB/GiB/TiB are binary (1024-based, like nvidia-smi's MiB and llama.cpp's logs);
// KB/MB/GB/TB are decimal (1000-based), for whoever copies a size from a spec sheet.

const BINARY: Readonly<Record<string, number>> = { '': 1, b: 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 };
const DECIMAL: Readonly<Record<string, number>> = { k: 1e3, m: 1e6, g: 1e9, t: 1e12 };

/** Bytes of a size string; throws RangeError naming the problem. */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*([kmgt]?)(i?b?)\s*$/i.exec(text);
  if (!m || m[1] === undefined)
    throw new RangeError(`'${text}' is not a size (like 1GiB, 1024MiB, 1G, 900M or a number of bytes)`);
  const value = Number(m[1]);
  const prefix = (m[2] ?? '').toLowerCase();
  const suffix = (m[3] ?? '').toLowerCase();
  let scale: number | undefined;
  if (suffix === 'b' && prefix !== '') scale = DECIMAL[prefix];
  else if (suffix === 'i')
    scale = undefined; // "Gi" without the B
  else scale = BINARY[prefix];
  if (suffix === 'ib' && prefix === '') scale = undefined;
  if (scale === undefined)
    throw new RangeError(`'${text}' has an unknown unit (use K, M, G, KiB, MiB, GiB, KB, MB or GB)`);
  const bytes = Math.round(value * scale);
  if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new RangeError(`'${text}' must be a positive size`);
  return bytes;
}

/** 1073741824 -> "1024.00 MiB". */
export function formatMiB(bytes: number, digits = 2): string {
  return `${(bytes / 2 ** 20).toFixed(digits)} MiB`;
}
