// How a server stops on SIGTERM/SIGINT, with one model or as a router: Fastify stops accepting (and answers 503 on
// open keep-alive connections) while the engine lets in-flight requests finish within the grace period, then
// cancels the rest.
import type { FastifyInstance } from 'fastify';

export async function drain(
  app: FastifyInstance,
  graceSeconds: number,
  closeEngine: () => Promise<void>,
): Promise<void> {
  // Keep-alive connections whose response finished after close() began would otherwise linger until their
  // keep-alive timeout (--keep-alive-timeout): close each as soon as it is idle.
  const sweep = setInterval(() => app.server.closeIdleConnections(), 100);
  // Past the grace period nothing may hold the exit: a connection still open then (a client that stopped reading,
  // a half-closed socket) is closed.
  const force = setTimeout(() => app.server.closeAllConnections(), graceSeconds * 1000 + 1000);
  try {
    await Promise.all([app.close(), closeEngine()]);
  } finally {
    clearInterval(sweep);
    clearTimeout(force);
  }
}
