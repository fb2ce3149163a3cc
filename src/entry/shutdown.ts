// How a server stops on SIGTERM/SIGINT, with one model or as a router: Fastify stops accepting (and answers 503 on
// open keep-alive connections) while the engine lets in-flight requests finish within the grace period, then
// cancels the rest.
import type { FastifyInstance } from 'fastify';

async function drain(app: FastifyInstance, graceSeconds: number, closeEngine: () => Promise<void>): Promise<void> {
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

/**
 * On the first SIGTERM or SIGINT: drain (above), then `closed()` (free what is left, flush the log). Resolves with the
 * exit code (0) once stopped; until then the listening socket keeps the process alive.
 */
export function stopOnSignal(
  app: FastifyInstance,
  graceSeconds: number,
  closeEngine: () => Promise<void>,
  closed: () => void,
): Promise<number> {
  return new Promise<number>((resolve) => {
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals): void => {
      if (stopping) return;
      stopping = true;
      app.log.info({ signal, graceSeconds }, 'shutting down: no new requests; finishing in-flight ones');
      void drain(app, graceSeconds, closeEngine)
        .finally(() => {
          app.log.info('stopped');
          closed();
        })
        .then(() => resolve(0));
    };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
  });
}
