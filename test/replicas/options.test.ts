import t from 'tap';
import { commandUsage } from '../../src/flags/command.ts';
import { FlagError } from '../../src/flags/parse.ts';
import { parseReplicasArgs, REPLICAS_COMMAND } from '../../src/replicas/options.ts';

t.test("the launcher's flags are taken out; the rest goes to every replica as given", async (t) => {
  const o = parseReplicasArgs(
    ['--replicas', '3', '--model', '/m.gguf', '-np', '2', '--port=9000', '-t', '1', '--gpus', '0,1', '-c', '4096'],
    {},
  );
  t.equal(o.replicas, 3);
  t.equal(o.model, '/m.gguf');
  t.equal(o.port, 9000);
  t.same(o.gpus, ['0', '1']);
  t.same(o.serverArgs, ['-np', '2', '-t', '1', '-c', '4096']);
  t.equal(o.server.parallel, 2, 'read by the server parser');
  t.equal(o.server.threads, 1);
  t.equal(o.host, '127.0.0.1');
  t.equal(o.sessionHeader, 'x-session-id');
  t.equal(o.basePort, 0);
  const d = parseReplicasArgs(['-m', 'x.gguf', '--shutdown-grace', '20', '--timeout', '30'], {});
  t.equal(d.model, 'x.gguf');
  t.equal(d.replicas, 0, 'unset: one per GPU');
  t.equal(d.server.shutdownGraceSeconds, 20);
  t.equal(d.server.timeoutSeconds, 30);
});

t.test('errors name the flag, for the launcher and for the server', async (t) => {
  const bad: Array<[string[], RegExp]> = [
    [['--replicas', '0'], /--replicas must be between 1 and 256/],
    [['--replicas'], /--replicas needs a value/],
    [['--port', '70000'], /--port must be between 1 and 65535/],
    [['--session-header', 'x y'], /--session-header: must be a header name/],
    [['--gpus', ','], /--gpus needs a comma-separated list/],
    [['--parallel', 'many'], /server option: --parallel must be an integer/],
    [['--frobnicate'], /server option: unknown option '--frobnicate'/],
    [['--trust-proxy', '10.0.0.1'], /--trust-proxy is set by the launcher/],
    [['--replicas', '9', '--base-port', '65530'], /leaves no room for 9 replicas/],
  ];
  for (const [argv, message] of bad) t.throws(() => parseReplicasArgs(argv, {}), { constructor: FlagError, message });
});

t.test('usage lists every flag', async (t) => {
  const usage = commandUsage(REPLICAS_COMMAND);
  for (const flag of ['--replicas', '--model', '--port', '--base-port', '--gpus', '--haproxy', '--session-header'])
    t.match(usage, flag);
});
