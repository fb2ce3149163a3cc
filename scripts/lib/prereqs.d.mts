export function hasCommand(cmd: string, args?: string[]): boolean;
export function requireTools(tools: string[]): void;
