export const webuiDir: string;
export function buildWeb(outDir?: string): Array<{ file: string; bytes: number; gzipBytes: number }>;
