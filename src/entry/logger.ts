// The server's log: one readable line per event at a terminal (pino-pretty, requests as "POST /v1/... 200 ..."),
// JSON lines otherwise or with --log-format json, to a file with --log-file, nothing with --log-disable.
// API keys are redacted everywhere.
import { createWriteStream } from 'node:fs';
import { type DestinationStream, type Logger, pino } from 'pino';
import pretty from 'pino-pretty';
import { REDACTED_PATHS } from '../server/app.ts';
import type { ServeConfig } from './config/index.ts';

/** Fields of the per-request line and of the startup summary, shown in the message at a terminal. */
const REQUEST_FIELDS = ['method', 'url', 'status', 'ms', 'promptTokens', 'outputTokens', 'ttftMs'];

/** The one human line for a request: `POST /v1/chat/completions 200 41+64 tok, TTFT 120 ms, 2300 ms`. */
export function requestLine(log: Record<string, unknown>): string {
  const tokens =
    typeof log.promptTokens === 'number' ? ` ${log.promptTokens}+${String(log.outputTokens ?? 0)} tok,` : '';
  const ttft = typeof log.ttftMs === 'number' ? ` TTFT ${log.ttftMs} ms,` : '';
  return `${String(log.method)} ${String(log.url)} ${String(log.status)}${tokens}${ttft} ${String(log.ms)} ms`;
}

/** The startup summary as `key: value` lines. */
export function summaryLines(summary: Record<string, unknown>): string {
  return Object.entries(summary)
    .map(([k, v]) => `  ${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join('\n');
}

export interface LoggerOptions {
  /** Whether stdout is a terminal (text with colours by default). */
  isTTY?: boolean;
  /** Where lines go instead of stdout (tests). */
  stream?: NodeJS.WritableStream;
}

export function createLogger(
  config: Pick<ServeConfig, 'logDisable' | 'verbose' | 'logLevel' | 'logFile' | 'logFormat'>,
  options: LoggerOptions = {},
): Logger {
  const isTTY = options.isTTY ?? process.stdout.isTTY === true;
  const level = config.logDisable ? 'silent' : config.verbose ? 'debug' : config.logLevel;
  const redact = { paths: REDACTED_PATHS, censor: '[redacted]' };
  let destination: DestinationStream;
  if (config.logFile !== undefined) destination = createWriteStream(config.logFile, { flags: 'a' });
  else if ((config.logFormat ?? (isTTY ? 'text' : 'json')) === 'text') {
    destination = pretty({
      ...(options.stream !== undefined ? { destination: options.stream } : {}),
      colorize: isTTY && options.stream === undefined,
      translateTime: 'HH:MM:ss',
      ignore: ['pid', 'hostname', 'reqId', 'summary', ...REQUEST_FIELDS].join(','),
      messageFormat: (log, messageKey) => {
        const msg = String(log[messageKey] ?? '');
        if (msg === 'request' && log.method !== undefined) return requestLine(log);
        if (typeof log.summary === 'object' && log.summary !== null)
          return `${msg}\n${summaryLines(log.summary as Record<string, unknown>)}`;
        return msg;
      },
      sync: true,
    });
  } else destination = options.stream ?? pino.destination({ dest: 1, sync: false });
  return pino({ level, redact }, destination);
}
