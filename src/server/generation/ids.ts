// Ids and timestamps of OpenAI and Anthropic response objects.
import { randomUUID } from 'node:crypto';

export function newCompletionId(prefix: 'chatcmpl' | 'cmpl'): string {
  return `${prefix}-${randomUUID().replaceAll('-', '')}`;
}

/** The Responses API's ids (resp_, msg_, rs_, fc_, call_) and Anthropic's message ids (msg_). */
export function newObjectId(prefix: 'resp' | 'msg' | 'rs' | 'fc' | 'call'): string {
  return `${prefix}_${randomUUID().replaceAll('-', '')}`;
}

export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}
