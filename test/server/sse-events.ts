// Parses an SSE body the way OpenAI clients read it.

/** The `data:` events of an SSE body, parsed; '[DONE]' stays a string. */
export function sseEvents(body: string): unknown[] {
  const events: unknown[] = [];
  for (const block of body.split('\n\n')) {
    if (block.trim() === '') continue;
    const data = block
      .split('\n')
      .filter((l) => l.startsWith('data: '))
      .map((l) => l.slice('data: '.length))
      .join('\n');
    events.push(data === '[DONE]' ? data : JSON.parse(data));
  }
  return events;
}
