// The --help sections of `npm start`, named as llama-server's --help names them (common, sampling, its own server
// params), then this server's own; and the reasons refusals in more than one section share.
export const COMMON = 'common params';
export const SAMPLING = 'sampling params';
export const SERVER = 'server params';
export const OURS = 'this server';

export const NO_SPECULATIVE = 'no speculative decoding';
