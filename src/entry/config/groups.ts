// The --help sections of `npm start`, named as llama-server's --help names them (common, sampling, speculative, its
// own server params), then this server's own.
export const COMMON = 'common params';
export const SAMPLING = 'sampling params';
export const SPECULATIVE = 'speculative params';
export const SERVER = 'server params';
export const OURS = 'this server';
