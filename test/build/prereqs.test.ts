import t from 'tap';
import { hasCommand, requireTools } from '../../scripts/lib/prereqs.mjs';

t.test('present tools pass', async (t) => {
  t.ok(hasCommand('git'));
  t.doesNotThrow(() => requireTools(['git', 'cmake', 'c++']));
});

t.test('a missing tool is named with how to get it', async (t) => {
  t.notOk(hasCommand('definitely-not-installed-tool'));
  t.throws(() => requireTools(['git', 'definitely-not-installed-tool']), {
    message:
      /missing build prerequisites:\n {2}- definitely-not-installed-tool: install it and make sure it is on PATH/,
  });
  const path = process.env.PATH;
  process.env.PATH = '/nonexistent';
  try {
    t.throws(() => requireTools(['git', 'cmake']), {
      message: /git: install git \(Debian\/Ubuntu: apt-get install git\)[\s\S]*cmake: install CMake/,
    });
  } finally {
    process.env.PATH = path;
  }
});
