// Entry of a rank process, forked by the coordinator (barrier.ts) with an IPC channel.
import { serveRank } from './rank.ts';

if (!process.send) {
  process.stderr.write('rank-main.ts is started by the load generator (npm run bench), not directly\n');
  process.exit(1);
}
// Without the coordinator nobody reads the results: stop at once.
process.on('disconnect', () => process.exit(1));
await serveRank(process as unknown as Parameters<typeof serveRank>[0]);
// Idle keep-alive sockets would hold the process open for a few seconds more.
process.exit(0);
