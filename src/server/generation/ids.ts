// Ids and timestamps of OpenAI response objects.
import { randomUUID } from 'node:crypto';

export function newCompletionId(prefix: 'chatcmpl' | 'cmpl'): string {
  return `${prefix}-${randomUUID().replaceAll('-', '')}`;
}

export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}
