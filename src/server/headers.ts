// Response headers spelled as llama-server spells them. HTTP header names are case-insensitive, but clients that
// copy them into a plain map (llama.cpp's own server tests do: dict(response.headers)) look them up by exact
// name. Fastify lower-cases the names it is given; the raw response keeps a name as set.
import type { FastifyReply } from 'fastify';

export function setCasedHeader(reply: FastifyReply, name: string, value: string): void {
  reply.raw.setHeader(name, value);
}
