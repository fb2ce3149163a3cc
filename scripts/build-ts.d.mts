export function hasSources(): boolean;
export function buildTs(): void;
