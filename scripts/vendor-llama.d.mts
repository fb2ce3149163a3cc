export const vendorDir: string;
export function cacheDir(): string;
export function checkVendorTree(dir?: string): { ok: true; head: string } | { ok: false; reason: string };
export function vendor(): string;
